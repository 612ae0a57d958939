"""A cached GGUF onto the CPU backend: download what is missing (the store, as for WebGPU), read
the cached chunks (each verified against its sha256; a corrupt one is fetched again) into one JS
Blob, and open a wllama engine on it. The bytes go IndexedDB -> Blob -> wllama's heap; Python
only holds chunk handles.

    model = await load_cpu_model(store, specs, site, tokenizer_of, progress=cb,
                                 context_length=None, threads=None)

Progress (phases as for WebGPU): download (when something is missing), cache (reading the
chunks: the first 60% of the rest), upload (wllama loading the Blob into its memory: the last
40%, one event when done).
"""
from __future__ import annotations

from ..models.loader import DEFAULT_CONTEXT   # the same default context as on WebGPU
from ..store.load import READAHEAD, LoadProgress, _download, _missing_bytes, model_files
from .errors import CpuBackendError
from .model import CpuInfo, CpuModel

READ_SHARE = 0.6


async def read_blob(store, spec, lp: LoadProgress):
    """A JS Blob of the cached file `spec`, every chunk verified (IDBChunkSource)."""
    from .wllama import blob_of
    src = await store.source(spec.cache_key, readahead=READAHEAD)
    parts, done = [], 0
    try:
        lp.cache_read(spec.label, 0, src.size, READ_SHARE)
        for i in range(src.n_chunks):
            data = await src.chunk(i)
            parts.append(data)
            done += int(data.byteLength)
            lp.cache_read(spec.label, done, src.size, READ_SHARE)
    finally:
        src.close()
    blob = blob_of(parts)
    # The Blob holds its own copy: release the chunk buffers now rather than at the next GC,
    # so the peak stays near one copy of the file plus the chunks still being read.
    for part in parts:
        destroy = getattr(part, "destroy", None)
        if destroy is not None:
            destroy()
    return blob


async def load_cpu_model(store, specs, site: str, *, progress=None,
                         context_length: int | None = None, threads: int | None = None,
                         wllama_version: str | None = None):
    """(CpuModel, Tokenizer) of a GGUF model in `store` (downloaded first where missing); the
    config and the tokenizer come from one read of the GGUF header. Raises the store's named
    errors, CpuBackendError (safetensors, or wllama failed) and ContextLengthError."""
    from ..formats.gguf import read_gguf
    from ..models.config import from_gguf
    from ..tokenizer import Tokenizer
    from .wllama import WllamaEngine, default_threads
    fmt, specs = model_files(specs)
    if fmt != "gguf":
        raise CpuBackendError("the CPU backend runs GGUF models; this model is a safetensors "
                              "checkpoint: load it with backend='webgpu' or pick its GGUF build")
    missing, _ = await _missing_bytes(store, specs)
    total = sum(s.size or 0 for s in specs)
    lp = LoadProgress(progress, missing, total)
    await _download(store, specs, lp if missing else None)
    spec = specs[0]
    src = await store.source(spec.cache_key)
    try:
        g = await read_gguf(src)
        config = from_gguf(g.metadata, g.tensors)
        tok = await Tokenizer.from_gguf(g)
    finally:
        src.close()
    ctx = int(context_length) if context_length else min(config.context_length, DEFAULT_CONTEXT)
    if ctx < 2:
        raise ValueError(f"context_length must be >= 2, got {context_length}")
    blob = await read_blob(store, spec, lp)
    n_threads = int(threads) if threads else default_threads()
    engine = await WllamaEngine.open(site, blob, n_ctx=ctx, n_threads=n_threads)
    lp.upload(1, 1)
    i = engine.info
    info = CpuInfo(threads=int(i.get("threads") or 1), multithread=bool(i.get("multithread")),
                   cross_origin_isolated=bool(i.get("cross_origin_isolated")),
                   llama_cpp=i.get("llama_cpp"), wllama=wllama_version)
    return CpuModel(engine, tok, config, int(i.get("n_ctx") or ctx), info), tok
