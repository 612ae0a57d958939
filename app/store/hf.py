"""A Hugging Face safetensors checkpoint from the weight cache into the engine.

app.models.load_model takes a checkpoint directory path (CPython) or a GGUF byte source, not
safetensors sources opened elsewhere; this mirrors its steps for per-file cache sources:

    config.json -> app.models.config.from_hf
    model.safetensors | index + shards -> app.formats.safetensors (each file an IDBChunkSource)
    -> TensorSet.from_safetensors -> load_weights -> Model(...).setup()

(The lead may fold this into load_model: a `load_checkpoint(dev, cfg, tensors, ...)` there would
leave only the opening here.)
"""
from __future__ import annotations

import json

from app.formats.safetensors import read_safetensors, read_sharded
from app.models.config import from_hf
from app.models.loader import _context, _guard
from app.models.model import Model
from app.models.tensors import TensorSet
from app.models.weights import load_weights

INDEX = "model.safetensors.index.json"


async def open_hf(store, by_name: dict, lp=None) -> tuple:
    """(ModelConfig, TensorSet, the IDBChunkSources opened: close() them after the upload) of a
    cached checkpoint; `by_name`: file name -> FileSpec. Only headers are read here."""
    from .load import read_cached
    opened = []
    cfg = from_hf(json.loads(await read_cached(store, by_name["config.json"].cache_key)))

    async def open_source(name: str):
        from .load import ModelFilesError, Reporting
        spec = by_name.get(name)
        if spec is None:
            raise ModelFilesError(f"the shard index names {name}, which was not downloaded")
        src = await store.source(spec.cache_key, readahead=1)
        opened.append(src)
        return src if lp is None else Reporting(src, lp, name)

    if INDEX in by_name:
        st = await read_sharded(await read_cached(store, by_name[INDEX].cache_key), open_source)
    else:
        st = await read_safetensors(await open_source("model.safetensors"), "model.safetensors")
    return cfg, TensorSet.from_safetensors(st, cfg.family), opened


async def load_hf(dev, store, by_name: dict, lp=None, context_length: int | None = None,
                  kv_dtype: str = "f16", quantize: str | None = None, prefill_chunk: int = 512,
                  decode_q8: bool = False) -> Model:
    """load_model's steps (same arguments, same named errors) for a cached checkpoint."""
    cfg, ts, opened = await open_hf(store, by_name, lp)
    try:
        ctx = _context(dev, cfg, context_length, kv_dtype)
        weights = await _guard(load_weights(dev, ts, cfg, quantize, lp.upload if lp else None),
                               "the weights")
    finally:
        for src in opened:
            src.close()
    model = Model(dev, cfg, weights, ctx, kv_dtype=kv_dtype, prefill_chunk=prefill_chunk,
                  decode_q8=decode_q8)
    try:
        await _guard(model.setup(), f"the KV cache for {ctx} tokens")
    except BaseException:
        model.destroy()
        raise
    return model
