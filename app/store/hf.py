"""A Hugging Face safetensors checkpoint from the weight cache into the engine.

Opens the cached files (config.json -> from_hf; model.safetensors or the index and its shards,
each an IDBChunkSource) and hands them to app.models.loader.load_checkpoint.
"""
from __future__ import annotations

import json

from app.formats.safetensors import read_safetensors, read_sharded
from app.models.config import from_hf
from app.models.loader import load_checkpoint
from app.models.model import Model
from app.models.tensors import TensorSet

INDEX = "model.safetensors.index.json"


async def open_hf(store, by_name: dict, lp=None) -> tuple:
    """(ModelConfig, TensorSet, the IDBChunkSources opened: close() them after the upload) of a
    cached checkpoint; `by_name`: file name -> FileSpec. Only headers are read here."""
    from .load import read_cached
    opened = []
    cfg = from_hf(json.loads(await read_cached(store, by_name["config.json"].cache_key)))

    async def open_source(name: str):
        from .load import READAHEAD, ModelFilesError, Reporting
        spec = by_name.get(name)
        if spec is None:
            raise ModelFilesError(f"the shard index names {name}, which was not downloaded")
        src = await store.source(spec.cache_key, readahead=READAHEAD)
        opened.append(src)
        return src if lp is None else Reporting(src, lp, name)

    if INDEX in by_name:
        st = await read_sharded(await read_cached(store, by_name[INDEX].cache_key), open_source)
    else:
        st = await read_safetensors(await open_source("model.safetensors"), "model.safetensors")
    return cfg, TensorSet.from_safetensors(st, cfg.family), opened


async def load_hf(dev, store, by_name: dict, lp=None, **load_kwargs) -> Model:
    """load_model for a cached checkpoint (same keyword arguments, same named errors)."""
    cfg, ts, opened = await open_hf(store, by_name, lp)
    return await load_checkpoint(dev, cfg, ts, opened, progress=lp.upload if lp else None,
                                 **load_kwargs)
