"""Fakes for the runtime service's ordering logic (queue, interrupt, status, events): a device
with the real allocation Ledger, a character-level tokenizer and a model whose "generation" is a
script. They stand in for the GPU only where the tests check order and bookkeeping; every
numeric claim about real models is in tests/gpu/test_runtime.py.

FakeModel.generate mirrors Model.generate's contract: it yields ids (or SampleResult-like
objects with with_logprobs), batch by batch; between batches it awaits `step` (an
asyncio.Event-like gate, when given) and yields to the loop, as a real readback does in the page.
Each request's reply is the prompt's last character repeated, so interleaved outputs would show.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.gpu import Ledger
from app.gpu.device import AdapterInfo
from app.runtime.platform import Platform

EOS, BOS, OFFSET = 0, 1, 2


class FakeTokenizer:
    """One token per character: id = ord(c) + 2; 0 = eos, 1 = bos."""
    chat_template = None
    extra_end_of_turn: list = []
    special_tokens: dict = {}
    eos_id, bos_id = EOS, BOS

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([BOS] if add_special_tokens else []) + [ord(c) + OFFSET for c in text]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(chr(i - OFFSET) for i in ids if i >= OFFSET)

    def token_to_id(self, token: str):
        return ord(token) + OFFSET if len(token) == 1 else None

    def id_to_token(self, i: int):
        return chr(i - OFFSET) if i >= OFFSET else None

    def is_byte_piece(self, i: int) -> bool:
        return False


@dataclass
class FakeResult:
    id: int
    logprob: float
    top: list


class FakeModel:
    def __init__(self, dev, context_length: int = 64, weights: int = 1000, batch: int = 4,
                 stop_after: int | None = None):
        self.dev, self.context_length, self.batch = dev, context_length, batch
        self.stop_after = stop_after     # emit eos after this many tokens (None: never)
        self.stats = {"prefill_s": 0.0, "prefill_tokens": 0, "decode_s": 0.0,
                      "decode_tokens": 0}
        self.cached: list[int] = []
        self.prompts: list[list[int]] = []
        self.yielded = 0
        self.closed_early = 0
        self.step = None                 # an asyncio.Event to wait on between batches
        self.buf = dev.create_buffer(weights, kind="weights", label="fake.weights")
        self.destroyed = False

    async def generate(self, ids, params=None, max_tokens=256, stop_ids=(),
                       with_logprobs=False):
        ids = list(ids)
        keep = 0
        for a, b in zip(self.cached, ids):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(ids) - 1)
        self.prompts.append(ids)
        self.stats["prefill_s"] += 0.5
        self.stats["prefill_tokens"] += len(ids) - keep
        self.stats["prefill_reused"] = keep
        self.cached = ids
        tok = ids[-1] if ids[-1] >= OFFSET else ord("x") + OFFSET
        count = 0
        finished = False
        try:
            while count < max_tokens:
                n = min(self.batch if count else 1, max_tokens - count)
                if count:
                    self.stats["decode_s"] += 0.1 * n
                    self.stats["decode_tokens"] += n
                if self.step is not None:
                    await self.step.wait()
                    self.step.clear()
                await asyncio.sleep(0)       # a readback that yields to the loop
                for _ in range(n):
                    t = EOS if self.stop_after is not None and count == self.stop_after else tok
                    count += 1
                    self.yielded += 1
                    yield FakeResult(t, -0.5, [(t, -0.5), (EOS, -2.0)]) if with_logprobs else t
                    if t in stop_ids:
                        finished = True
                        return
            finished = True
        finally:
            if not finished:
                self.closed_early += 1

    def reset(self) -> None:
        self.cached = []

    def destroy(self) -> None:
        if not self.destroyed:
            self.dev.destroy_buffer(self.buf)
            self.destroyed = True


class FakeDevice:
    is_cpu = False

    def __init__(self):
        self.info = AdapterInfo("fake", "arch", "fake device", "a fake adapter", "native")
        self.features = frozenset({"timestamp-query"})
        self.limits = {"maxStorageBufferBindingSize": 1 << 30, "maxBufferSize": 1 << 30}
        self.ledger = Ledger()
        self.lost = None

    def create_buffer(self, size, *, kind, label=""):
        self.ledger.alloc(kind, size)
        return (kind, size)

    def destroy_buffer(self, buf):
        self.ledger.free(*buf)


class FakePlatform(Platform):
    name = "fake"

    def __init__(self, budget=None, fail: list | None = None, context_length: int = 64,
                 weights: int = 1000):
        self.budget = budget
        self.fail = list(fail or [])     # exceptions raised by the next load() calls, in order
        self.context_length, self.weights = context_length, weights
        self.events: list = []
        self.loads: list = []            # (entry id, ledger total when load() started)
        self.models: list[FakeModel] = []
        self.devices: list[FakeDevice] = []

    async def open_device(self):
        self.devices.append(FakeDevice())
        return self.devices[-1]

    async def bundled_models(self):
        return []

    async def cached(self, entry):
        return {"cached": True, "partial": False, "bytes": 7}

    async def load(self, dev, entry, progress, *, context_length, kv_dtype, hf_token):
        self.loads.append((entry.id, dev.ledger.total))
        for i in range(1, 5):
            progress({"phase": "download" if i < 3 else "upload", "loaded_bytes": i * 10,
                      "total_bytes": 40, "text": f"step {i}", "progress": i / 4})
            await asyncio.sleep(0)
        if self.fail:
            raise self.fail.pop(0)
        model = FakeModel(dev, self.context_length, self.weights)
        self.models.append(model)
        return model, FakeTokenizer()

    def versions(self):
        return {"python": "fake"}

    def memory_budget(self, dev):
        return self.budget

    def emit(self, name, detail):
        self.events.append((name, detail))
