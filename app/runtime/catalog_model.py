"""CatalogModel: one model the runtime can load, as an app.store ModelEntry (so
app.store.load.load_cached_model takes it) with the catalog's metadata, its memory estimate
(app/runtime/model_memory.py) and runnable(), the check made before anything is downloaded.

`files` are the FileSpecs the store checks while downloading: a size is given to the store only
when the catalog marks it exact (a wrong size fails the download), a sha256 only when known.
`file_sizes` keep the catalog's figures, exact or not, for display and the estimate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from app.store.catalog import CatalogError as StoreCatalogError
from app.store.catalog import ModelEntry

from .model_memory import (PREFILL_CHUNK, Arch, activation_bytes, growth, kv_cache_bytes,
                           kv_layer_bytes, largest_work_buffer)

HF_FILE_URL = re.compile(r"^https://huggingface\.co/([\w.-]+/[\w.-]+)/resolve/[\w.-]+/[^?#]+$")
DEFAULT_CONTEXT = 4096      # app/models/loader.py DEFAULT_CONTEXT
MIB = 1 << 20


class CatalogError(StoreCatalogError):
    """A catalog entry is malformed. `entry` is its id (or index), `field` the bad field."""

    def __init__(self, entry, field: str, problem: str):
        super().__init__(f"catalog entry {entry!r}: field {field!r} {problem}")
        self.entry, self.field = entry, field


@dataclass(frozen=True)
class CatalogModel(ModelEntry):
    """One model the runtime can load. `files` (FileSpecs for the store) hold the size only when
    exact; `file_sizes` keep the catalog's figures (exact or approximate) for display."""
    family: str = "unknown"                 # app.models.config family; "unknown" until loaded
    params: int | None = None
    quantization: str | None = None
    arch: Arch | None = None
    context_length: int | None = None       # what the runtime asks for by default
    required_features: tuple[str, ...] = ()
    optional_features: tuple[str, ...] = ()
    license: str | None = None
    license_url: str | None = None
    gated: bool = False                     # Hugging Face repo needs a token (hf_token)
    cpu_ok: bool = False                    # small enough for a CPU adapter
    default: bool = False
    file_sizes: tuple = ()                  # int | None per file, exact or approximate
    size_exact: bool = True                 # every file size is exact
    user_added: bool = False
    imported: bool = False                  # copied from a local file (no URL to fetch it from)

    @property
    def size(self) -> int | None:
        """Total download bytes (approximate when not size_exact); None when unknown."""
        sizes = self.file_sizes or tuple(f.size for f in self.files)
        return None if any(s is None for s in sizes) else sum(sizes)

    @property
    def repo(self) -> str | None:
        m = HF_FILE_URL.match(self.files[0].url) if self.files else None
        return m.group(1) if m else None

    @property
    def max_context(self) -> int | None:
        return self.arch.max_context if self.arch else None

    def weights_bytes(self) -> int | None:
        """Estimated GPU bytes of the weights (model_memory: file bytes x layout growth)."""
        sizes = [s for f, s in zip(self.files, self.file_sizes or [f.size for f in self.files])
                 if self.format == "gguf" or f.label.endswith(".safetensors")]
        if not sizes or any(s is None for s in sizes):
            return None
        return round(sum(sizes) * growth(self.quantization, self.format, self.arch))

    def memory_breakdown(self, context_length: int | None = None, kv_dtype: str = "f16",
                         prefill_chunk: int = PREFILL_CHUNK) -> dict | None:
        """{"weights", "kv_cache", "activations", "total", "context_length"} in bytes, or None
        when the architecture or a file size is unknown (a user model before it is loaded).
        prefill_chunk: 512 on GPUs; CPU adapters use 64 (app/models/model.py)."""
        weights = self.weights_bytes()
        if self.arch is None or weights is None:
            return None
        ctx = context_length or self.context_length or min(self.arch.max_context, DEFAULT_CONTEXT)
        kv = kv_cache_bytes(self.arch, ctx, kv_dtype)
        act = activation_bytes(self.arch, ctx, prefill_chunk)
        return {"weights": weights, "kv_cache": kv, "activations": act,
                "total": weights + kv + act, "context_length": ctx}

    def memory_bytes(self, context_length: int | None = None, kv_dtype: str = "f16",
                     prefill_chunk: int = PREFILL_CHUNK) -> int | None:
        """GPU bytes needed at `context_length` (default: the entry's): weights + KV cache +
        work buffers; None when unknown (see memory_breakdown)."""
        b = self.memory_breakdown(context_length, kv_dtype, prefill_chunk)
        return None if b is None else b["total"]

    def runnable(self, dev_info: dict, budget: int | None = None, *,
                 context_length: int | None = None, kv_dtype: str = "f16") -> str | None:
        """None when this model can run on the device described by `dev_info` (what
        check_webgpu() returns: "features", "limits") within `budget` bytes (None: unknown);
        else the reason, saying what to do. Unknown needs (a user model before loading) are not
        a reason."""
        have = set(dev_info.get("features", ()))
        missing = [f for f in self.required_features if f not in have]
        if missing:
            return (f"{self.name} needs the WebGPU feature(s) {', '.join(missing)}, which this "
                    "GPU does not offer. Pick another model, or a browser/GPU that supports it.")
        b = self.memory_breakdown(context_length, kv_dtype)
        if b is None:
            return None
        limits = dev_info.get("limits") or {}
        bind = min(limits.get("maxStorageBufferBindingSize") or 1 << 62,
                   limits.get("maxBufferSize") or 1 << 62)
        ctx = b["context_length"]
        layer = kv_layer_bytes(self.arch, ctx, kv_dtype)
        if layer > bind:
            fits = bind // (layer // ctx)
            hint = " or kv_dtype='f16'" if kv_dtype == "f32" else ""
            return (f"{self.name} at {ctx} tokens needs {layer / MIB:.0f} MiB per layer of KV "
                    f"cache in one buffer; this GPU binds at most {bind / MIB:.0f} MiB. Use a "
                    f"context of at most {fits} tokens{hint}.")
        work = largest_work_buffer(self.arch)
        if work > bind:
            return (f"{self.name} needs a {work / MIB:.0f} MiB work buffer; this GPU binds at most "
                    f"{bind / MIB:.0f} MiB. Pick a smaller model.")
        if budget is not None and b["total"] > budget:
            return (f"{self.name} needs about {b['total'] / MIB:.0f} MiB of GPU memory (weights "
                    f"{b['weights'] / MIB:.0f} MiB, KV cache {b['kv_cache'] / MIB:.0f} MiB for "
                    f"{ctx} tokens, work buffers {b['activations'] / MIB:.0f} MiB); this device "
                    f"allows about {budget / MIB:.0f} MiB. Pick a smaller model or a shorter "
                    "context.")
        return None

    def with_config(self, cfg) -> "CatalogModel":
        """This entry with the family and architecture of a loaded model's config (a user model
        once its header has been read; its memory estimate also needs the file sizes)."""
        return replace(self, family=cfg.family, arch=Arch.from_config(cfg))

    def to_dict(self) -> dict:
        """JSON-safe; what available_models() lists (the runtime adds cached/partial)."""
        sizes = self.file_sizes or tuple(f.size for f in self.files)
        return {"id": self.id, "name": self.name, "family": self.family, "params": self.params,
                "quantization": self.quantization, "format": self.format, "repo": self.repo,
                "files": [{"url": f.url, "size": s, "sha256": f.sha256, "size_exact": f.size
                           is not None} for f, s in zip(self.files, sizes)],
                "size": self.size, "size_exact": self.size_exact,
                "memory_bytes": self.memory_bytes(),
                "context_length": self.context_length, "max_context": self.max_context,
                "arch": self.arch.to_dict() if self.arch else None,
                "required_features": list(self.required_features),
                "optional_features": list(self.optional_features),
                "license": self.license, "license_url": self.license_url, "gated": self.gated,
                "cpu_ok": self.cpu_ok, "default": self.default, "bundled": self.bundled,
                "user_added": self.user_added, "imported": self.imported}
