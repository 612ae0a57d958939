"""Upload a checkpoint's tensors to the GPU, tensor by tensor as they are read (never the whole
file in memory), into the per-layer records the forward pass reads.

Matrices become GPUWeights in an internal layout (app/kernels/quant.upload_weight; on the page's
CPU adapter the repack runs on the host, host_repack.py; for an F32/F16/BF16 safetensors
checkpoint with `quantize`, app/kernels/quantize_weight on the GPU).
Vectors (norm weights, biases) become f32 buffers. Fused tensors (Phi-3's attn_qkv and gate|up
ffn_up) are split by rows into their parts at upload, so every family runs the same blocks.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from ..gpu import Buffer, Device
from ..kernels.dequant import dequantize
from ..kernels.layouts import LAYOUT_OF, NEEDS_REPACK, Chunk, GPUWeight, row_bytes, rows_per_chunk
from ..kernels.quant import WeightSizeError, _byte_source, gguf_row_bytes, upload_weight
from ..formats.sources import as_bytes
from . import host_repack
from .config import ModelConfig
from .tensors import TensorSet

DENSE = ("F32", "F16", "BF16")
QUANTIZE = {"q8_0": "q8_0", "q4": "q4"}


def _concat(parts):
    """One byte array of `parts` back to back: JS Uint8Arrays stay in JS (the page), anything
    else is joined in Python. Used for one layer's q|k|v or gate|up (a few MB), never a file."""
    if all(hasattr(p, "subarray") for p in parts):
        from js import Uint8Array
        out = Uint8Array.new(sum(int(p.byteLength) for p in parts))
        off = 0
        for p in parts:
            out.set(p, off)
            off += int(p.byteLength)
        return out
    return b"".join(memoryview(p).cast("B") for p in parts)


class QuantizeOptionError(ValueError):
    """`quantize` was asked for a model whose weights are already quantized, or is unknown."""


@dataclass
class LayerWeights:
    """One block's weights. `qkv` (rows q | k | v) and `gate_up` (rows gate | up) are the fused
    forms the decode step uses (one matvec instead of three / two); q, k, v are then views of
    qkv's buffer for prefill, and gate/up are None (prefill runs gate_up too)."""
    attn_norm: Buffer
    q: GPUWeight
    k: GPUWeight
    v: GPUWeight
    o: GPUWeight
    ffn_norm: Buffer
    gate: GPUWeight | None
    up: GPUWeight | None
    down: GPUWeight
    qkv: GPUWeight | None = None
    qkv_bias: Buffer | None = None
    gate_up: GPUWeight | None = None
    q_bias: Buffer | None = None
    k_bias: Buffer | None = None
    v_bias: Buffer | None = None
    q_norm: Buffer | None = None
    k_norm: Buffer | None = None
    post_attn_norm: Buffer | None = None
    post_ffw_norm: Buffer | None = None


@dataclass
class ModelWeights:
    token_embd: GPUWeight
    output_norm: Buffer
    output: GPUWeight               # token_embd itself when the embeddings are tied
    layers: list[LayerWeights]
    rope_freqs: list | None = None  # llama3 GGUF files: per-pair frequency divisors
    rope_long: list | None = None   # phi3 GGUF files: longrope factors
    rope_short: list | None = None
    owned: list = field(default_factory=list)   # everything to free on destroy

    def destroy(self, dev: Device) -> None:
        for o in self.owned:
            if isinstance(o, GPUWeight):
                o.destroy(dev)
            else:
                dev.destroy_buffer(o)
        self.owned.clear()

    @property
    def nbytes(self) -> int:
        return sum(o.nbytes if isinstance(o, GPUWeight) else o.size for o in self.owned)


class _Uploader:
    def __init__(self, dev: Device, ts: TensorSet, quantize: str | None,
                 progress: Callable | None):
        self.dev, self.ts, self.quantize, self.progress = dev, ts, quantize, progress
        self.owned: list = []
        self.total = sum(self._nbytes(n) for n in ts.names)
        self.done = 0

    def _nbytes(self, name: str) -> int:
        shape = self.ts.shape(name)
        cols = shape[-1]
        rows = 1
        for d in shape[:-1]:
            rows *= d
        try:
            return rows * gguf_row_bytes(self.ts.type(name), cols)
        except (KeyError, ValueError):
            return 0

    def _advance(self, name: str) -> None:
        self.done += self._nbytes(name)
        if self.progress is not None:
            self.progress(self.done, self.total)

    async def vector(self, name: str) -> Buffer:
        """(n,) f32 buffer of a 1-D tensor (norm weight, bias) of type F32, F16 or BF16."""
        t, shape = self.ts.type(name), self.ts.shape(name)
        n = shape[-1]
        raw = await self.ts.data(name)
        if t == "F32":
            buf = self.dev.upload(raw, kind="weights", label=name)
        else:
            w = await upload_weight(self.dev, name, t, raw, 1, n)
            try:
                buf = self.dev.create_buffer(4 * n, kind="weights", label=name)
                await dequantize(self.dev, w, out=buf)
            finally:
                w.destroy(self.dev)
        self.owned.append(buf)
        self._advance(name)
        return buf

    async def joined(self, name: str, parts: list[Buffer]) -> Buffer:
        """f32 vectors back to back in one new buffer (a fused q|k|v bias; a few KB, read back
        and re-uploaded once at load)."""
        data = b"".join([bytes(await self.dev.read(b)) for b in parts])
        buf = self.dev.upload(data, kind="weights", label=name)
        self.owned.append(buf)
        return buf

    async def floats(self, name: str) -> list:
        """A small F32 tensor read to the host (rope frequency factors)."""
        if self.ts.type(name) != "F32":
            raise QuantizeOptionError(f"tensor {name!r} should be F32, is {self.ts.type(name)}")
        data = bytes(as_bytes(await self.ts.data(name)))
        self._advance(name)
        return list(struct.unpack(f"<{len(data) // 4}f", data))

    async def matrix(self, name: str, parts: tuple = ()) -> GPUWeight | list[GPUWeight]:
        """A 2-D tensor as one GPUWeight, or split by rows into `parts` = ((name, rows), ...)."""
        t, shape = self.ts.type(name), self.ts.shape(name)
        if len(shape) != 2:
            raise ValueError(f"tensor {name!r} has shape {shape}, expected a matrix")
        rows, cols = shape
        raw = await self.ts.data(name)
        if not parts:
            parts = ((name, rows),)
        if sum(r for _, r in parts) != rows:
            raise ValueError(f"tensor {name!r} has {rows} rows, expected "
                             f"{' + '.join(str(r) for _, r in parts)}")
        row_b = gguf_row_bytes(t, cols)
        size, piece = _byte_source(name, raw)
        out, r0 = [], 0
        for part, n in parts:
            data = piece(r0 * row_b, (r0 + n) * row_b) if len(parts) > 1 else raw
            out.append(await self._upload(part, t, data, n, cols))
            r0 += n
        self._advance(name)
        return out if len(out) > 1 else out[0]

    def fusable(self, names: list[str], views_at: tuple = ()) -> bool:
        """Whether tensors `names` (same type and cols) stack into one single-chunk weight whose
        rows `views_at` start at aligned byte offsets (so they can be read as views)."""
        if not all(n in self.ts for n in names):
            return False
        types = {self.ts.type(n) for n in names}
        cols = {self.ts.shape(n)[-1] for n in names}
        if len(types) != 1 or len(cols) != 1 or any(len(self.ts.shape(n)) != 2 for n in names):
            return False
        t, c = types.pop(), cols.pop()
        layout = "q8_0a" if self.quantize == "q8_0" and t in DENSE else \
            "q4_1" if self.quantize == "q4" and t in DENSE else LAYOUT_OF.get(t)
        if layout is None:
            return False
        try:
            rb = row_bytes(layout, c)
            per_chunk = rows_per_chunk(layout, c, self.dev.limits["maxStorageBufferBindingSize"])
        except ValueError:
            return False
        rows = sum(self.ts.shape(n)[0] for n in names)
        align = self.dev.limits.get("minStorageBufferOffsetAlignment", 256)
        # views of the weight rows, and of the f32 output rows (decode's q | k | v buffer)
        return rows <= per_chunk and all(r * rb % align == 0 and 4 * r % align == 0
                                         for r in views_at)

    async def stacked(self, name: str, parts: list[str]) -> GPUWeight:
        """Tensors `parts` stacked by rows into one GPUWeight called `name`. Where the GGUF
        blocks already are the internal layout, each part is written straight into its rows of
        the one buffer; a CPU adapter's host repack (host_repack.py) also writes part by part;
        otherwise (GPU repack, quantize, a part of a size WebGPU cannot write at an offset) the
        parts are joined first."""
        t, cols = self.ts.type(parts[0]), self.ts.shape(parts[0])[1]
        rows = sum(self.ts.shape(p)[0] for p in parts)
        row_b = gguf_row_bytes(t, cols)
        if t in NEEDS_REPACK or (self.quantize and t in DENSE) \
                or any(self.ts.shape(p)[0] * row_b % 4 for p in parts):
            raws = [await self.ts.data(p) for p in parts]
            shaped = [(raw, self.ts.shape(p)[0]) for raw, p in zip(raws, parts)]
            if not self.quantize and host_repack.applies(self.dev, t, shaped):
                w = await host_repack.upload(self.dev, name, t, shaped, cols)
                self.owned.append(w)
            else:
                w = await self._upload(name, t, _concat(raws), rows, cols)
        else:
            w = await self._direct(name, t, parts, rows, cols)
        for p in parts:
            self._advance(p)
        return w

    async def _direct(self, name, t, parts, rows, cols) -> GPUWeight:
        """One weights buffer of `rows` rows (fusable() checked that they fit one binding),
        part i written at its first row: no joined copy of the parts on the host."""
        row_b = gguf_row_bytes(t, cols)
        w = GPUWeight(name, LAYOUT_OF[t], rows, cols)
        buf = self.dev.create_buffer(rows * row_b, kind="weights", label=f"{name}[0:{rows}]")
        w.chunks.append(Chunk(buf, 0, rows))
        self.owned.append(w)
        r0 = 0
        for p in parts:
            raw, n = await self.ts.data(p), self.ts.shape(p)[0]
            size, _ = _byte_source(p, raw)
            if size != n * row_b:
                raise WeightSizeError(f"tensor {p!r}: {t} {n} x {cols} needs {n * row_b} bytes, "
                                      f"got {size}; the model file is truncated or corrupt")
            self.dev.write(buf, raw, r0 * row_b)
            r0 += n
        return w

    async def _upload(self, name, t, data, rows, cols) -> GPUWeight:
        if self.quantize and t in DENSE:
            from ..kernels.quantize_weight import quantize_weight
            w = await quantize_weight(self.dev, name, t, data, rows, cols, QUANTIZE[self.quantize],
                                      check=False)
        elif host_repack.applies(self.dev, t, [(data, rows)]):
            w = await host_repack.upload(self.dev, name, t, [(data, rows)], cols)
        else:
            w = await upload_weight(self.dev, name, t, data, rows, cols, check=False)
        self.owned.append(w)
        return w


async def load_weights(dev: Device, ts: TensorSet, cfg: ModelConfig, quantize: str | None = None,
                       progress: Callable | None = None) -> ModelWeights:
    """All weights of `cfg`'s model from `ts`, uploaded in file order per layer. `progress(done,
    total)` gets byte counts after each tensor. On any error everything uploaded is freed."""
    if quantize is not None:
        if quantize not in QUANTIZE:
            raise QuantizeOptionError(f"quantize must be one of {sorted(QUANTIZE)} or None, "
                                      f"got {quantize!r}")
        if ts.type("token_embd.weight") not in DENSE:
            raise QuantizeOptionError("quantize applies to F32/F16/BF16 checkpoints; this model "
                                      f"is already {ts.type('token_embd.weight')}")
    up = _Uploader(dev, ts, quantize, progress)
    try:
        weights = await _load(up, ts, cfg)
        await dev.check("uploading the weights")   # one error-scope round trip for all tensors
        return weights
    except BaseException:
        ModelWeights(None, None, None, [], owned=up.owned).destroy(dev)
        raise


async def _load(up: _Uploader, ts: TensorSet, cfg: ModelConfig) -> ModelWeights:
    """Decide every upload first (what to stack, what to split), run them in the order their
    bytes lie in the file (a streamed or chunk-cached source then reads each chunk once; GGUF
    files often list layers in name order: blk.0, blk.1, blk.10, ...), then assemble."""
    q_rows, kv_rows = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    views = (q_rows, q_rows + kv_rows)
    jobs: list = []      # (file position, slot, coroutine function)

    def add(slot, names, fn, *args):
        jobs.append((min(ts.position(n) for n in names), slot, partial(fn, *args)))

    def vec(slot, name):
        add(slot, [name], up.vector, name)

    def mat(slot, name, parts=()):
        add(slot, [name], up.matrix, name, parts)

    mat("embd", "token_embd.weight")
    for i in range(cfg.n_layers):
        p = f"blk.{i}."
        vec((i, "attn_norm"), p + "attn_norm.weight")
        names = [p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"]
        if p + "attn_qkv.weight" in ts:
            if up.fusable([p + "attn_qkv.weight"], views):
                mat((i, "qkv"), p + "attn_qkv.weight")
            else:
                mat((i, "q,k,v"), p + "attn_qkv.weight", ((names[0], q_rows),
                                                          (names[1], kv_rows),
                                                          (names[2], kv_rows)))
        elif up.fusable(names, views):
            add((i, "qkv"), names, up.stacked, p + "attn_qkv.weight", names)
        else:
            for key, n in zip("qkv", names):
                mat((i, key), n)
        for key, name in (("q_bias", "attn_q.bias"), ("k_bias", "attn_k.bias"),
                          ("v_bias", "attn_v.bias")):
            if cfg.qkv_bias and p + name in ts:
                vec((i, key), p + name)
        if cfg.qk_norm:
            vec((i, "q_norm"), p + "attn_q_norm.weight")
            vec((i, "k_norm"), p + "attn_k_norm.weight")
        mat((i, "o"), p + "attn_output.weight")
        if cfg.post_norms:
            vec((i, "post_attn_norm"), p + "post_attention_norm.weight")
            vec((i, "post_ffw_norm"), p + "post_ffw_norm.weight")
        vec((i, "ffn_norm"), p + "ffn_norm.weight")
        gu = [p + "ffn_gate.weight", p + "ffn_up.weight"]
        if p + "ffn_gate.weight" not in ts:         # phi3: ffn_up holds gate rows then up rows
            mat((i, "gate_up"), p + "ffn_up.weight")
        elif up.fusable(gu):
            add((i, "gate_up"), gu, up.stacked, p + "ffn_gate_up.weight", gu)
        else:
            mat((i, "gate"), gu[0])
            mat((i, "up"), gu[1])
        mat((i, "down"), p + "ffn_down.weight")
    vec("output_norm", "output_norm.weight")
    if not cfg.tied_embeddings and "output.weight" in ts:
        mat("output", "output.weight")
    for name in ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"):
        if name in ts:
            add(name, [name], up.floats, name)

    got: dict = {}
    for _, slot, fn in sorted(jobs, key=lambda j: j[0]):
        got[slot] = await fn()

    al = up.dev.limits.get("minStorageBufferOffsetAlignment", 256)
    layers = []
    for i in range(cfg.n_layers):
        p = f"blk.{i}."
        L = {key: got[(i, key)] for key in (
            "q", "k", "v", "q_bias", "k_bias", "v_bias", "q_norm", "k_norm", "post_attn_norm",
            "post_ffw_norm", "gate", "up", "gate_up") if (i, key) in got}
        if (i, "q,k,v") in got:
            L["q"], L["k"], L["v"] = got[(i, "q,k,v")]
        qkv = got.get((i, "qkv"))
        if qkv is not None:
            names = [p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"]
            L["q"], L["k"], L["v"] = (qkv.view(names[0], 0, q_rows, al),
                                      qkv.view(names[1], q_rows, kv_rows, al),
                                      qkv.view(names[2], q_rows + kv_rows, kv_rows, al))
            assert None not in (L["q"], L["k"], L["v"]), "fusable() admitted unaligned views"
            if "q_bias" in L:
                L["qkv_bias"] = await up.joined(p + "attn_qkv.bias",
                                                [L["q_bias"], L["k_bias"], L["v_bias"]])
        layers.append(LayerWeights(
            got[(i, "attn_norm")], L.pop("q"), L.pop("k"), L.pop("v"), got[(i, "o")],
            got[(i, "ffn_norm")], L.pop("gate", None), L.pop("up", None), got[(i, "down")],
            qkv=qkv, **L))
    embd = got["embd"]
    w = ModelWeights(embd, got["output_norm"], got.get("output", embd), layers, owned=up.owned)
    w.rope_freqs = got.get("rope_freqs.weight")
    w.rope_long = got.get("rope_factors_long.weight")
    w.rope_short = got.get("rope_factors_short.weight")
    return w
