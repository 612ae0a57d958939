"""Decode's RoPE + KV-cache append in one dispatch (shaders/rope_kv.wgsl), for one token's fused
q | k | v row (f32, (n_heads + 2 n_kv_heads) * head_dim, as the fused qkv matvec writes it):

    await rope_kv(dev, qkv, table, cache, layer, step, n_heads, neox=False)
        q rotated in place at position step.pos;
        cache.k[layer][step.pos] = rope(k), cache.v[layer][step.pos] = v   (f32 or packed f16)

The same result as rope(q), rope(k) (app/kernels/rope.py) followed by kv_write
(app/kernels/kv_cache.py) for one token, one dispatch instead of two; except that qkv's k is
left unrotated (attention reads k from the cache). The position, n_tokens and seq_end come from
the Step uniform, so a recorded plan replays at any position. Prefill (n_tokens > 1) keeps the
separate ops.
"""
from __future__ import annotations

from ..gpu import Buffer, Device
from .grid import grid
from .kv_cache import KVCache, nbytes
from .rope import RopeTable

WG = 256  # invocations per workgroup in shaders/rope_kv.wgsl


async def rope_kv(dev: Device, qkv, table: RopeTable, cache: KVCache, layer: int, step: Buffer,
                  n_heads: int, neox: bool = False, target=None) -> None:
    """qkv: a Buffer or (Buffer, offset, size) view holding at least one f32 row of
    (n_heads + 2 cache.n_kv_heads) * cache.head_dim. neox=False: interleaved pairs (GGUF llama);
    True: half split (NeoX, HF rotate_half)."""
    hd, nkv = cache.head_dim, cache.n_kv_heads
    if table.rotary_dim > hd:
        raise ValueError(f"rope_kv: rotary_dim {table.rotary_dim} > head_dim {hd}")
    if not 0 <= layer < cache.n_layers:
        raise ValueError(f"rope_kv: layer {layer} is not in the cache's 0..{cache.n_layers - 1}")
    if n_heads <= 0:
        raise ValueError(f"rope_kv: n_heads must be positive, got {n_heads}")
    width = 4 * (n_heads + 2 * nkv) * hd
    if isinstance(qkv, Buffer):
        qkv = (qkv, 0, qkv.size)
    if nbytes(qkv) < width:
        raise ValueError(f"rope_kv: qkv holds {nbytes(qkv)} bytes, needs one row of "
                         f"({n_heads} + 2 x {nkv}) x {hd} f32 = {width}")
    half = table.rotary_dim // 2
    pipe = await dev.pipeline("rope_kv", "main", {
        "HEAD_DIM": hd, "N_HEADS": n_heads, "N_KV": nkv, "HALF_ROT": half,
        "MAX_CTX": cache.max_ctx, "NEOX": bool(neox), "LONG_AFTER": table.long_after,
        "ATTN_FACTOR": table.attention_factor}, {"KV_F16": cache.f16})
    bg = dev.bind(pipe, [(qkv[0], qkv[1], width), table.buffer, step, cache.k[layer],
                         cache.v[layer]])
    n = n_heads * half + nkv * hd // 2
    (dev if target is None else target).dispatch(pipe, [bg], grid(-(-n // WG)))
