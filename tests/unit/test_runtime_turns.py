"""FIFO turns (app/runtime/turns.py): order is the order of take(), not of task start; one
holder at a time; a cancelled or released waiter does not stall the line."""
from __future__ import annotations

import asyncio

from app.runtime.turns import Turns


def test_order_is_take_order_and_exclusive():
    async def main():
        turns = Turns()
        log, inside = [], []

        async def job(name, ticket):
            async with ticket:
                inside.append(name)
                assert len(inside) == 1
                log.append(name)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                inside.remove(name)

        tickets = [(n, turns.take()) for n in "abcde"]
        # start the tasks in reverse: the tickets' order must win
        await asyncio.gather(*(job(n, t) for n, t in reversed(tickets)))
        assert log == list("abcde") and len(turns) == 0
    asyncio.run(main())


def test_cancelled_waiter_and_released_ticket_do_not_stall():
    async def main():
        turns = Turns()
        a, b, c, d = (turns.take() for _ in range(4))
        log = []

        async def job(name, t):
            async with t:
                log.append(name)

        await a.__aenter__()
        tb = asyncio.ensure_future(job("b", b))
        tc = asyncio.ensure_future(job("c", c))
        await asyncio.sleep(0)
        tb.cancel()
        d.release()                          # a ticket never entered
        await asyncio.sleep(0)
        await a.__aexit__(None, None, None)
        await asyncio.wait_for(tc, 2)
        assert log == ["c"] and len(turns) == 0
    asyncio.run(main())
