"""load_model: a GGUF file or a Hugging Face safetensors checkpoint -> a ready Model.

    model = await load_model(dev, "SmolLM2.Q4_1.gguf", context_length=2048)
    model = await load_model(dev, "Qwen3-0.6B/", quantize="q8_0")        # config.json + shards
    model = await load_model(dev, FileSource(path) | JSBufferSource(buf) | IDBChunkSource(...))

The header is parsed from the first bytes of the source; tensors are then read one at a time and
uploaded (app/models/weights.py), so no step holds the whole file in memory.
"""
from __future__ import annotations

import json
import os
from typing import Callable

from ..formats.gguf import read_gguf
from ..formats.safetensors import read_safetensors, read_sharded
from ..formats.sources import FileSource
from ..gpu import Device, GPUError, GPUOutOfMemoryError
from .config import from_gguf, from_hf
from .model import Model
from .tensors import TensorSet
from .weights import load_weights

DEFAULT_CONTEXT = 4096


class ModelSourceError(ValueError):
    """The path is neither a GGUF file nor a directory with config.json and safetensors."""


class ModelMemoryError(GPUError):
    """The weights, KV cache or work buffers do not fit the GPU."""


async def open_checkpoint(source) -> tuple:
    """(ModelConfig, TensorSet, sources to close) of a path or a GGUF byte source."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            return await _open_hf_dir(path)
        if not os.path.isfile(path):
            raise ModelSourceError(f"{path}: no such file or directory")
        source = FileSource(path)
        try:
            g = await read_gguf(source)
        except BaseException:
            source.close()
            raise
        return from_gguf(g.metadata, g.tensors), TensorSet.from_gguf(g), [source]
    if not hasattr(source, "read") or not hasattr(source, "size"):
        raise ModelSourceError(f"cannot load a model from {type(source).__name__}")
    g = await read_gguf(source)
    return from_gguf(g.metadata, g.tensors), TensorSet.from_gguf(g), []


async def _open_hf_dir(path: str) -> tuple:
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        raise ModelSourceError(f"{path} has no config.json: a Hugging Face checkpoint directory "
                               "needs config.json and model.safetensors (or its index and shards)")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = from_hf(json.load(f))
    opened: list = []

    async def open_source(name):
        s = FileSource(os.path.join(path, name))
        opened.append(s)
        return s

    index = os.path.join(path, "model.safetensors.index.json")
    try:
        if os.path.isfile(index):
            with open(index, "rb") as f:
                st = await read_sharded(f.read(), open_source)
        elif os.path.isfile(os.path.join(path, "model.safetensors")):
            st = await read_safetensors(await open_source("model.safetensors"), "model.safetensors")
        else:
            raise ModelSourceError(f"{path} has no model.safetensors or "
                                   "model.safetensors.index.json")
    except BaseException:
        for s in opened:
            s.close()
        raise
    return cfg, TensorSet.from_safetensors(st, cfg.family), opened


async def load_model(dev: Device, source, context_length: int | None = None,
                     kv_dtype: str = "f16", quantize: str | None = None,
                     progress: Callable | None = None, prefill_chunk: int = 512,
                     decode_q8: bool = False) -> Model:
    """Load weights tensor by tensor, allocate a KV cache for `context_length` tokens (default:
    the model's, at most DEFAULT_CONTEXT) and the work buffers. `progress(done_bytes, total)`
    during the upload. decode_q8: decode's matvecs over quantized weights take the int8-dot
    path (app/kernels/matvec.py; faster, adds the int8 rounding of activations). Raises
    named errors for bad files and ModelMemoryError when it does not fit; nothing stays
    allocated after a failure."""
    cfg, ts, opened = await open_checkpoint(source)
    return await load_checkpoint(dev, cfg, ts, opened, context_length, kv_dtype, quantize,
                                 progress, prefill_chunk, decode_q8)


async def load_checkpoint(dev: Device, cfg, ts: TensorSet, opened=(),
                          context_length: int | None = None, kv_dtype: str = "f16",
                          quantize: str | None = None, progress: Callable | None = None,
                          prefill_chunk: int = 512, decode_q8: bool = False) -> Model:
    """load_model's work for a checkpoint opened elsewhere (e.g. safetensors shards in the
    IndexedDB cache, app/store/hf.py): `cfg` (from_gguf / from_hf), its TensorSet, and the
    sources to close once the weights are uploaded."""
    try:
        ctx = _context(dev, cfg, context_length, kv_dtype)
        weights = await _guard(load_weights(dev, ts, cfg, quantize, progress), "the weights")
    finally:
        for s in opened:
            s.close()
    model = Model(dev, cfg, weights, ctx, kv_dtype=kv_dtype, prefill_chunk=prefill_chunk,
                  decode_q8=decode_q8)
    try:
        await _guard(model.setup(), f"the KV cache for {ctx} tokens")
    except BaseException:
        model.destroy()
        raise
    return model


def _context(dev: Device, cfg, asked: int | None, kv_dtype: str) -> int:
    """The KV cache length: what was asked, or the model's (at most DEFAULT_CONTEXT); one
    layer's K (or V) buffer must fit one storage binding."""
    item = {"f32": 4, "f16": 2}.get(kv_dtype)
    if item is None:
        raise ValueError(f"kv_dtype must be 'f16' or 'f32', got {kv_dtype!r}")
    per_token = cfg.n_kv_heads * cfg.head_dim * item
    fits = dev.limits["maxStorageBufferBindingSize"] // per_token
    if asked is None:
        return max(2, min(cfg.context_length, DEFAULT_CONTEXT, fits))
    if asked < 2:
        raise ValueError(f"context_length must be >= 2, got {asked}")
    if asked > fits:
        hint = " or kv_dtype='f16'" if kv_dtype == "f32" else ""
        raise ModelMemoryError(
            f"a context of {asked} tokens needs {asked * per_token >> 20} MiB per layer for K "
            f"(and as much for V); this GPU binds at most "
            f"{dev.limits['maxStorageBufferBindingSize'] >> 20} MiB, i.e. {fits} tokens. Use a "
            f"shorter context{hint}.")
    return asked


async def _guard(coro, what: str):
    try:
        return await coro
    except GPUOutOfMemoryError as e:
        raise ModelMemoryError(f"{what} do not fit in GPU memory ({e}). Pick a smaller or more "
                               "quantized model, or a shorter context.") from e
