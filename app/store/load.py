"""A model from the weight cache into the engine: download what is missing, then stream the
cached chunks into GPU buffers.

    model = await load_cached_model(dev, store, entry, progress=cb, context_length=256)

`entry` is a catalog ModelEntry, a FileSpec (or URL) of one GGUF file, or a list of FileSpecs of
a Hugging Face checkpoint: config.json plus model.safetensors, or model.safetensors.index.json
(the shards it names are downloaded too, from next to the index, unless listed themselves).

A GGUF goes through app.models.load_model(dev, IDBChunkSource): its header is parsed from the
first chunk(s), then each tensor is read from the chunks that hold it (each verified against its
sha256 on first read, in the store's reader worker, READAHEAD chunks ahead of the upload; a
corrupt one is fetched again) and uploaded before the next is read.
A safetensors checkpoint is opened here from per-shard sources (hf.py), as load_model only takes
a directory path for those.

Progress events (the `local-llm:progress` event's detail):

    {"phase": "download" | "cache" | "upload", "file": str | None,
     "loaded_bytes": int, "total_bytes": int | None, "progress": float 0..1 (overall)}

download: bytes of the model's files in the cache while fetching (only when something is
missing); cache: bytes of the headers read from the cache while opening the checkpoint; upload:
tensor bytes on the GPU. `progress` never decreases and the last event has 1.0. The download's
share of it is the bytes missing at the start over (missing + model size); the rest is upload.
"""
from __future__ import annotations

import json
from urllib.parse import urljoin

from .catalog import ModelEntry
from .download import FileSpec
from .errors import StoreError

INDEX = "model.safetensors.index.json"
READAHEAD = 3   # chunks read + verified ahead of the upload: <= 5 x 16 MiB held (IDBChunkSource)


class ModelFilesError(StoreError):
    """The files given for a model do not make a loadable checkpoint (the message says why)."""


class LoadProgress:
    """Turns phase counts into events with a monotonic overall fraction."""

    def __init__(self, callback, missing: int, total: int):
        self.callback = callback
        self.download_share = missing / (missing + total) if missing + total else 0.0
        self.missing = missing
        self.best = 0.0
        self.events = 0

    def _emit(self, phase, file, loaded, total, fraction):
        self.best = max(self.best, min(1.0, fraction))
        self.events += 1
        if self.callback is not None:
            self.callback({"phase": phase, "file": file, "loaded_bytes": int(loaded),
                           "total_bytes": None if total is None else int(total),
                           "progress": self.best})

    def download(self, event: dict, already: int) -> None:
        """A Store.download event; `already`: bytes that were cached before it started."""
        o = event["overall"]
        done = max(0, o["loaded_bytes"] - already)
        frac = min(1.0, done / self.missing) if self.missing else 1.0
        self._emit("download", event["file"], event["loaded_bytes"], event["total_bytes"],
                   self.download_share * frac)

    def cache(self, file, loaded: int, total: int) -> None:
        self._emit("cache", file, loaded, total, self.download_share)

    def cache_read(self, file, loaded: int, total: int, share: float) -> None:
        """Cached bytes read as the load's main work (the CPU backend reads the whole file
        before its engine loads it): `share` of the non-download part of the progress."""
        frac = loaded / total if total else 1.0
        self._emit("cache", file, loaded, total,
                   self.download_share + (1.0 - self.download_share) * share * frac)

    def upload(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        self._emit("upload", None, done, total,
                   self.download_share + (1.0 - self.download_share) * frac)


def model_files(model) -> tuple[str, list[FileSpec]]:
    """(format "gguf" | "safetensors", the file specs) of what load_cached_model accepts."""
    if isinstance(model, ModelEntry):
        specs = list(model.files)
    elif isinstance(model, FileSpec):
        specs = [model]
    elif isinstance(model, str):
        specs = [FileSpec(model)]
    else:
        specs = list(model)
    if not specs or not all(isinstance(s, FileSpec) for s in specs):
        raise ModelFilesError(f"cannot load a model from {model!r}: give a catalog entry, a "
                              "FileSpec or URL of a .gguf file, or FileSpecs of config.json and "
                              "the safetensors files")
    names = [s.label for s in specs]
    ggufs = [n for n in names if n.endswith(".gguf")]
    if ggufs:
        if len(specs) != 1:
            raise ModelFilesError(f"a GGUF model is one file; got {names} (split GGUF files are "
                                  "not supported)")
        return "gguf", specs
    if "config.json" not in names or not (INDEX in names or "model.safetensors" in names):
        raise ModelFilesError(f"a safetensors checkpoint needs config.json and model.safetensors "
                              f"or {INDEX}; got {names}")
    return "safetensors", specs


async def _missing_bytes(store, specs) -> tuple[int, int]:
    """(bytes not yet in the cache, bytes already there) over `specs` (sizes from the specs or
    the records; unknown sizes count as 0)."""
    stored = {f.key: f for f in await store.list()}
    missing = already = 0
    for s in specs:
        f = stored.get(s.cache_key)
        have = 0 if f is None else f.stored_bytes
        size = s.size if s.size is not None else (f.size if f else None)
        already += have
        missing += max(0, (size or 0) - have)
    return missing, already


async def read_cached(store, key: str) -> bytes:
    """A whole small cached file (config.json, the shard index) as bytes."""
    src = await store.source(key)
    data = await src.read(0, src.size)
    return data.to_bytes() if hasattr(data, "to_bytes") else bytes(data)


async def _download(store, specs, lp: LoadProgress | None) -> None:
    missing, already = await _missing_bytes(store, specs)
    cb = None
    if lp is not None and missing:
        cb = lambda e: lp.download(e, already)              # noqa: E731
    await store.download(specs, cb)


async def load_cached_model(dev, store, model, progress=None, **load_model_kwargs):
    """Download `model`'s files into `store` where missing, then load them from the cache into
    a ready app.models.Model (load_model_kwargs: context_length, kv_dtype, quantize, ...).
    Raises the store's named errors (DownloadError, QuotaError, IntegrityError), ModelFilesError
    for an unusable file list, and the engine's for a bad or too large model."""
    fmt, specs = model_files(model)
    missing, _ = await _missing_bytes(store, specs)
    total = sum(s.size or 0 for s in specs)
    lp = LoadProgress(progress, missing, total)
    await _download(store, specs, lp if missing else None)
    if fmt == "gguf":
        from app.models import load_model
        src = await store.source(specs[0].cache_key, readahead=READAHEAD)
        lp.cache(specs[0].label, 0, src.size)
        try:
            return await load_model(dev, Reporting(src, lp, specs[0].label),
                                    progress=lp.upload, **load_model_kwargs)
        finally:
            src.close()
    from .hf import load_hf
    by_name = {s.label: s for s in specs}
    if INDEX in by_name:
        index = json.loads(await read_cached(store, by_name[INDEX].cache_key))
        shards = sorted(set((index.get("weight_map") or {}).values()))
        extra = [FileSpec(urljoin(by_name[INDEX].url, n), name=n, headers=by_name[INDEX].headers)
                 for n in shards
                 if isinstance(n, str) and n not in by_name]
        if extra:
            # Shard sizes are unknown until their headers arrive: the index's total_size (tensor
            # bytes) stands in for them in the overall fraction.
            est = int((index.get("metadata") or {}).get("total_size") or 0)
            more, _ = await _missing_bytes(store, extra)
            best = lp.best
            lp = LoadProgress(progress, missing + (more or est), total + est)
            lp.best = best                                  # never below what was reported
            await _download(store, extra, lp)
            by_name.update({s.label: s for s in extra})
    return await load_hf(dev, store, by_name, lp, **load_model_kwargs)


class Reporting:
    """A byte source passing reads through; reads before the first upload event (the header and
    the first tensor) are reported as phase "cache"."""

    def __init__(self, src, lp: LoadProgress, name: str):
        self.src, self.lp, self.name, self.size = src, lp, name, src.size
        self.read_bytes = 0

    async def read(self, offset: int, n: int):
        data = await self.src.read(offset, n)
        self.read_bytes += n
        if self.lp.best <= self.lp.download_share:       # no upload event yet: opening
            self.lp.cache(self.name, self.read_bytes, self.size)
        return data
