"""The KV cache: per layer, K and V buffers of (max_ctx, n_kv_heads, head_dim), f32 or packed f16.

    cache = KVCache(dev, n_layers, max_ctx, n_kv_heads, head_dim, dtype="f16")
    await kv_write(dev, cache, layer, k, v, step)      # rows step.pos .. step.pos + n_tokens - 1

Storage: "f32" keeps the f32 values; "f16" packs 2 values per u32 with pack2x16float (element
2i in the low half), half the memory and bandwidth, and needs no shader-f16 feature. Row r of a
layer's K buffer starts at byte r * n_kv_heads * head_dim * itemsize.

Sliding-window models (Gemma-2/3 local layers) still store every position up to max_ctx: the
window is applied when attending (shaders/attention_*.wgsl), not by a ring buffer. Simple, and
the global layers of those models need the full length anyway; a ring buffer for local layers
would save memory and is not done.
"""
from __future__ import annotations

from ..gpu import Buffer, Device, GPUError
from .grid import grid

DTYPES = {"f32": 4, "f16": 2}  # storage dtype -> bytes per element
WG = 64  # invocations per workgroup in shaders/kv_cache.wgsl


def nbytes(b) -> int:
    """Bytes of a binding: a Buffer, or a (Buffer, offset, size) view."""
    return b.size if isinstance(b, Buffer) else b[2]


class KVCache:
    """K and V buffers for every layer (kind="kv_cache"), plus a reusable scratch buffer for the
    split-K partials of attention_decode (kind="activations")."""

    def __init__(self, dev: Device, n_layers: int, max_ctx: int, n_kv_heads: int, head_dim: int,
                 dtype: str = "f32", label: str = "kv"):
        if dtype not in DTYPES:
            raise ValueError(f"KV cache dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if head_dim % 4:
            raise ValueError(f"head_dim {head_dim} must be a multiple of 4 (vec4 rows)")
        self.dev, self.dtype, self.n_layers = dev, dtype, n_layers
        self.max_ctx, self.n_kv_heads, self.head_dim = max_ctx, n_kv_heads, head_dim
        self.layer_bytes = max_ctx * n_kv_heads * head_dim * DTYPES[dtype]
        limit = dev.limits["maxStorageBufferBindingSize"]
        if self.layer_bytes > limit:
            raise GPUError(f"one layer's K cache ({self.layer_bytes} bytes for max_ctx {max_ctx}) "
                           f"exceeds maxStorageBufferBindingSize ({limit}); lower the context "
                           "length or use dtype='f16'")
        self.k: list[Buffer] = []
        self.v: list[Buffer] = []
        try:
            for i in range(n_layers):
                for bufs, name in ((self.k, "k"), (self.v, "v")):
                    bufs.append(dev.create_buffer(self.layer_bytes, kind="kv_cache",
                                                  label=f"{label}.{name}{i}"))
        except Exception:
            self.destroy()
            raise
        self._scratch: Buffer | None = None

    @property
    def f16(self) -> bool:
        return self.dtype == "f16"

    def scratch(self, size: int) -> Buffer:
        """A scratch buffer of at least `size` bytes, shared by all layers (their dispatches run in
        order). Growing replaces (and destroys) it, which invalidates bind groups recorded
        earlier: a model's layers all ask for the same size, so record plans after the first
        attention call of the model's shape."""
        if self._scratch is None or self._scratch.size < size:
            if self._scratch is not None:
                self.dev.destroy_buffer(self._scratch)
            self._scratch = self.dev.create_buffer(size, kind="activations", label="kv.scratch")
        return self._scratch

    def destroy(self) -> None:
        for b in self.k + self.v + ([self._scratch] if getattr(self, "_scratch", None) else []):
            self.dev.destroy_buffer(b)
        self.k, self.v, self._scratch = [], [], None


async def kv_write(dev: Device, cache: KVCache, layer: int, k, v, step: Buffer,
                   target=None) -> None:
    """Copy this step's k, v (n_tokens, n_kv_heads, head_dim) f32 into `layer` at rows
    step.pos .. step.pos + step.n_tokens - 1. k and v are Buffers or (Buffer, offset, size) views;
    the dispatch covers as many rows as k holds, so the Step uniform alone picks n_tokens and
    pos."""
    row4 = cache.n_kv_heads * cache.head_dim // 4
    rows = nbytes(k) // (16 * row4)
    if rows < 1 or nbytes(v) < nbytes(k):
        raise ValueError(f"kv_write: k ({nbytes(k)} bytes) / v ({nbytes(v)} bytes) hold no full "
                         f"row of {cache.n_kv_heads} x {cache.head_dim} f32")
    pipe = await dev.pipeline("kv_cache", "main", {"ROW4": row4, "MAX_CTX": cache.max_ctx},
                              {"KV_F16": cache.f16})
    bg = dev.bind(pipe, [k, v, cache.k[layer], cache.v[layer], step])
    (target or dev).dispatch(pipe, [bg], grid(-(-rows * row4 // WG)))
