"""FIFO turns for the one model: requests (chat, complete) and model operations (init, switch,
unload) run one at a time, in the order they were made.

    ticket = turns.take()          # at call time: the place in line is fixed here
    async with ticket:             # waits until every earlier ticket is done
        ...

Taking the ticket synchronously at call time (rather than when a task first runs) is what makes
the order the callers' order, whatever order the event loop later starts their tasks in.
A ticket that is never entered must be released with ticket.release(), or the line stalls;
entering and leaving (or cancelling the wait) releases it.
"""
from __future__ import annotations

import asyncio
from collections import deque


class Ticket:
    def __init__(self, turns: "Turns"):
        self._turns = turns
        self._ready: asyncio.Future | None = None
        self.done = False

    async def __aenter__(self) -> "Ticket":
        try:
            await self._turns._wait(self)
        except BaseException:
            self.release()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if not self.done:
            self.done = True
            self._turns._release(self)


class Turns:
    def __init__(self):
        self._line: deque[Ticket] = deque()

    def take(self) -> Ticket:
        t = Ticket(self)
        self._line.append(t)
        return t

    def __len__(self) -> int:
        return len(self._line)

    async def _wait(self, t: Ticket) -> None:
        if self._line and self._line[0] is t:
            return
        t._ready = asyncio.get_running_loop().create_future()
        await t._ready

    def _release(self, t: Ticket) -> None:
        was_head = bool(self._line) and self._line[0] is t
        try:
            self._line.remove(t)
        except ValueError:
            return
        if was_head and self._line:
            nxt = self._line[0]
            if nxt._ready is not None and not nxt._ready.done():
                nxt._ready.set_result(None)
