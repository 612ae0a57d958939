"""history[step.pos + step.n_tokens] = result[0] (shaders/token_store.wgsl): the sampled token is
kept on the GPU by position, so decode steps chain without reading anything back and the host
reads a batch of ids at once."""
from __future__ import annotations

from ..gpu import Buffer, Device


async def token_store(dev: Device, result: Buffer, history: Buffer, step: Buffer,
                      target=None) -> None:
    pipe = await dev.pipeline("token_store", "main")
    bg = dev.bind(pipe, [(result, 0, 4), history, step])
    (dev if target is None else target).dispatch(pipe, [bg], (1, 1, 1))
