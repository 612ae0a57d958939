"""BrowserPlatform: the runtime's I/O in the engine worker (Pyodide, static/engine-worker.js).

    platform = BrowserPlatform(site, post, versions)   # site: the site's base URL (".../")

- open_device: app.gpu's browser backend (the worker's navigator.gpu); one device, reopened
  after it is lost or destroyed.
- bundled_models: models/catalog.json of the site (build.py writes it; URLs made absolute).
- cached / load: the IndexedDB weight store (app.store): download what is missing, stream the
  cached chunks to the GPU (app.store.load.load_cached_model), then the tokenizer: the GGUF's own
  vocabulary (header re-read from the cache) or the checkpoint's tokenizer.json.
- the cache manager (catalog_ops.py): the weight store's files by key (a URL, or
  "import:<model id>/<file>" for a file the user imported: import_file copies a File/Blob into
  the store with Store.save_blob and reads its header back); storage estimate and persisted.
- user_models / save_user_models: the user models' records in the settings IndexedDB
  (static/settings-store.js, key "user-models"), so they come back on the next visit.
- versions: Python, Pyodide and the vendored npm packages (versions.json, written by build.py).
- memory_budget: half of navigator.deviceMemory (see memory_budget).
- emit: a message to the page, {"event", "detail", "memory": ledger snapshot or None}.

Vendored JS (store.js, the tokenizer libraries) is resolved against `site`, not against this
worker's URL (<site>/static/engine-worker.js).
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace

from .platform import Platform

MiB = 1 << 20
SETTINGS_JS = "static/settings-store.js"
USER_MODELS_KEY = "user-models"


def default_site() -> str:
    """The site's base URL: the worker runs <site>/static/engine-worker.js; a page is at <site>."""
    import js
    doc = getattr(js, "document", None)
    if doc:
        return str(doc.baseURI)
    return str(js.URL.new("../", str(js.location.href)).href)


def _post_message(msg: dict) -> None:
    import js
    js.postMessage(js.JSON.parse(json.dumps(msg, default=str)))


async def _content_length(url: str) -> int | None:
    """The size a HEAD request announces (redirects followed), or None when it says nothing or
    fails (no network, CORS): the download then learns the size from its own response."""
    from js import Object, fetch
    from pyodide.ffi import JsException, to_js
    try:
        resp = await fetch(url, to_js({"method": "HEAD"}, dict_converter=Object.fromEntries))
    except JsException:
        return None
    length = resp.headers.get("content-length") if resp.ok else None
    return int(length) if length and str(length).isdigit() else None


def _mb(n) -> str:
    return "?" if n is None else f"{n / MiB:,.1f}"


def progress_text(event: dict) -> str:
    """A line for the progress bar, from a load_cached_model progress event."""
    phase, done, total = event.get("phase"), event.get("loaded_bytes"), event.get("total_bytes")
    if phase == "download":
        return f"Downloading {event.get('file') or 'the model'}: {_mb(done)} of {_mb(total)} MB"
    if phase == "cache":
        return f"Reading {event.get('file') or 'the model'} from this device's cache"
    if phase == "upload":
        return f"Uploading weights to the GPU: {_mb(done)} of {_mb(total)} MB"
    return str(phase or "")


class BrowserPlatform(Platform):
    name = "browser"

    def __init__(self, site: str | None = None, post=None, versions: dict | None = None):
        """site: the site's base URL (default: derived from this worker's or page's location);
        post(dict): sends one message to the page (default: the worker's postMessage);
        versions: versions.json's {package: version}."""
        from app.store import browser as store_js
        from app.tokenizer import browser as tokenizer_js
        site = site or default_site()
        self.site = site if site.endswith("/") else site + "/"
        self._post = post or _post_message
        self._versions = dict(versions or {})
        self.device = None                  # the last device opened (the service's)
        self._diag_device = None            # the self-test's own, when the service has none
        self._store = None
        store_js.set_base(self.site)
        tokenizer_js.set_vendor_base(self.site)

    # -- GPU --------------------------------------------------------------------------------
    async def open_device(self):
        """A new device; the last one is kept for emit()'s ledger snapshots."""
        from app.gpu import open_device
        self.device = await open_device()
        return self.device

    async def self_test(self, m=37, n=29, k=45, seed=None) -> dict:
        """The GPU self-test (app/selftest.py), the page's diagnostics: on the service's device
        when it has one (its buffers are freed again), else on a device of its own."""
        from app.gpu import open_device
        from app.selftest import matmul_selftest
        dev = self.device
        if dev is None or dev.lost is not None:
            if self._diag_device is None or self._diag_device.lost is not None:
                self._diag_device = await open_device()
            dev = self._diag_device
        return await matmul_selftest(dev, int(m), int(n), int(k), None if seed is None else int(seed))

    def memory_budget(self, dev) -> int | None:
        """Bytes a model may use: half of navigator.deviceMemory (GiB of RAM, deliberately
        coarse: rounded to a power of two and capped by the browser against fingerprinting;
        headless Chromium here says 16), because WebGPU does not say how much GPU memory there
        is and on integrated GPUs, the common case, weights share RAM with the OS and the
        browser. None when the browser does not say (Firefox, Safari)."""
        import js
        gib = getattr(js.navigator, "deviceMemory", None)
        try:
            gib = float(gib)
        except (TypeError, ValueError):
            return None
        return int(gib * 2**30 / 2) if gib > 0 else None

    # -- catalog and cache ------------------------------------------------------------------
    async def bundled_models(self) -> list[dict]:
        """The site's models/catalog.json entries with absolute file URLs (they are relative to
        the catalog). A site built without models has none."""
        from urllib.parse import urljoin

        from js import fetch
        url = urljoin(self.site, "models/catalog.json")
        resp = await fetch(url)
        if resp.status == 404:
            return []
        if not resp.ok:
            raise RuntimeError(f"{url} answered HTTP {resp.status}; reload the page")
        data = json.loads(await resp.text())
        out = []
        for m in data.get("models", []):
            files = [{**f, "url": urljoin(url, f["url"]),
                      "name": f.get("name") or f["url"].rsplit("/", 1)[-1]} for f in m["files"]]
            out.append({**m, "files": files, "bundled": bool(m.get("bundled", True))})
        return out

    async def local_model(self, model_id: str, catalog):
        """A user model for a model id that is a URL: an absolute http(s) URL, or a path on
        this site ("models/x.gguf"), of a GGUF file; the catalog adds it (its id derives from
        the URL). None for anything else. Safetensors checkpoints (several files) are added
        with Catalog.add and loaded by their id."""
        from urllib.parse import urljoin, urlsplit
        parts = urlsplit(model_id)
        is_url = parts.scheme in ("http", "https")
        if not is_url and (parts.scheme or not parts.path.lower().endswith(".gguf")):
            return None
        entry = catalog.add(model_id if is_url else urljoin(self.site, model_id))
        if entry.user_added:
            entry = await self.with_size(entry)
            catalog.replace(entry)
        return entry

    async def with_size(self, entry):
        """A one-file user model with the size a HEAD request announces: a known size lets the
        store check the quota first and report download progress."""
        if len(entry.files) == 1 and entry.files[0].size is None and entry.files[0].url:
            size = await _content_length(entry.files[0].url)
            if size is not None:
                spec = replace(entry.files[0], size=size)
                entry = replace(entry, files=(spec,), file_sizes=(size,), size_exact=True)
        return entry

    async def store(self):
        from app.store import Store
        if self._store is None:
            self._store = await Store.open()
        return self._store

    async def cached(self, entry) -> dict:
        """{"cached": every file complete, "partial": some bytes stored but not all, "bytes"}."""
        files = {f.key: f for f in await (await self.store()).list()}
        got = [files.get(spec.cache_key) for spec in entry.files]
        stored = sum(f.stored_bytes for f in got if f is not None)
        complete = bool(got) and all(f is not None and f.complete for f in got)
        return {"cached": complete, "partial": not complete and stored > 0, "bytes": stored}

    # -- the cache manager and the user's models ----------------------------------------------
    async def cache_files(self) -> list[dict]:
        return [{"key": f.key, "name": f.name, "url": f.url, "bytes": f.stored_bytes,
                 "size": f.size, "complete": f.complete} for f in await (await self.store()).list()]

    async def delete_cache_file(self, key: str) -> None:
        await (await self.store()).delete(key)

    async def storage_estimate(self) -> dict:
        import js

        from app.store import browser as store_js
        usage, quota = await store_js.estimate()
        try:
            persisted = bool(await js.navigator.storage.persisted())
        except Exception:  # noqa: BLE001 - a browser without the call: unknown
            persisted = None
        return {"usage": usage, "quota": quota, "persisted": persisted}

    async def _settings(self):
        import js
        from pyodide.code import run_js
        if getattr(self, "_settings_js", None) is None:
            url = str(js.URL.new(SETTINGS_JS, self.site).href)
            self._settings_js = await run_js("(url) => import(url)")(url)
        return self._settings_js

    async def user_models(self) -> list[dict]:
        # JSON text both ways: a missing record is "null"
        return json.loads(str(await (await self._settings()).getSetting(USER_MODELS_KEY))) or []

    async def save_user_models(self, records: list[dict]) -> None:
        await (await self._settings()).putSetting(USER_MODELS_KEY, json.dumps(records))

    def file_info(self, file) -> dict:
        """Name and size of a JS File/Blob (a Blob has no name)."""
        if file is None or not hasattr(file, "size") or not hasattr(file, "slice"):
            raise TypeError("import_model_file needs a File or Blob (picked or dropped by the "
                            f"user), got {type(file).__name__}")
        return {"name": str(getattr(file, "name", "") or ""), "size": int(file.size)}

    async def import_file(self, file, model_id: str, filename: str, progress):
        """Copy the File/Blob into the store under "import:<model_id>/<filename>" (phase
        "import"), then parse its header from the store; a bad file is deleted again and the
        parser's (or the engine's) named error raised."""
        from app.formats.gguf import read_gguf
        from app.models.config import from_gguf
        from app.store.download import FileSpec

        from .native import check_vocab
        store = await self.store()
        key = f"import:{model_id}/{filename}"

        def report(event: dict) -> None:
            done, total = event["loaded_bytes"], event["total_bytes"]
            progress({"phase": "import", "loaded_bytes": done, "total_bytes": total,
                      "text": f"Importing {filename}: {_mb(done)} of {_mb(total)} MB"})

        try:
            rec = await store.save_blob(file, key, name=filename, on_progress=report)
            src = await store.source(key)
            try:
                g = await read_gguf(src)
            finally:
                src.close()
            cfg = from_gguf(g.metadata, g.tensors)
            check_vocab(g.metadata, filename)
        except BaseException:
            await store.delete(key)
            raise
        return FileSpec(url="", size=int(rec["size"]), name=filename, key=key), cfg

    @staticmethod
    async def _check_imported(store, specs) -> None:
        """An imported file (no URL) must still be in the store: nothing can fetch it again."""
        from .catalog_ops import ImportedFileMissingError
        for spec in specs:
            if not spec.url:
                rec = await store.record(spec.cache_key)
                if rec is None or not rec["complete"]:
                    raise ImportedFileMissingError(
                        f"{spec.label} was imported from a file on this device and is no longer "
                        "in this browser's model cache; import the file again")

    # -- loading ----------------------------------------------------------------------------
    @staticmethod
    def _auth_specs(entry, hf_token):
        specs = list(entry.files)
        if hf_token:
            # The token goes to the model's own file URLs only, in memory (FileSpec.headers:
            # never stored in IndexedDB, never logged); shards named by an index inherit it.
            auth = (("Authorization", f"Bearer {hf_token}"),)
            specs = [replace(sp, headers=auth) for sp in specs]
        return specs

    async def load(self, dev, entry, progress, *, context_length=None, kv_dtype="f16",
                   hf_token=None, **options):
        """Download (phase "download"), open (phase "cache") and upload (phase "upload") the
        model, then load its tokenizer. Returns (Model, Tokenizer); nothing stays allocated on
        the GPU when it fails. `options` go to app.models.load_model (e.g. quantize)."""
        from app.store.load import load_cached_model, model_files
        store = await self.store()
        specs = self._auth_specs(entry, hf_token)
        await self._check_imported(store, specs)

        def report(event: dict) -> None:
            if progress is not None:
                progress({**event, "text": event.get("text") or progress_text(event)})

        model = await load_cached_model(dev, store, specs, progress=report,
                                        context_length=context_length, kv_dtype=kv_dtype,
                                        **options)
        try:
            fmt, specs = model_files(specs)
            tokenizer = await self._tokenizer(store, fmt, specs)
        except BaseException:
            model.destroy()
            raise
        return model, tokenizer

    def cpu_unavailable(self) -> str | None:
        if "@wllama/wllama" not in self._versions:
            return ("this site was built without the CPU backend's files (vendor/wllama-wllama); "
                    "rebuild it with build.py")
        return None

    async def load_cpu(self, entry, progress, *, context_length=None, hf_token=None,
                       threads=None):
        """The CPU backend (app/cpu): the same cached GGUF bytes, read into a Blob for wllama."""
        from app.cpu import CpuBackendUnavailableError
        from app.cpu.load import load_cpu_model
        reason = self.cpu_unavailable()
        if reason:
            raise CpuBackendUnavailableError(reason)
        store = await self.store()
        await self._check_imported(store, entry.files)

        def report(event: dict) -> None:
            if progress is not None:
                text = event.get("text") or progress_text(event)
                if event.get("phase") == "upload":
                    text = "Loading the weights into memory (CPU backend)"
                progress({**event, "text": text})

        return await load_cpu_model(store, self._auth_specs(entry, hf_token), self.site,
                                    progress=report, context_length=context_length,
                                    threads=threads,
                                    wllama_version=self._versions.get("@wllama/wllama"))

    async def _tokenizer(self, store, fmt: str, specs):
        from app.tokenizer import Tokenizer
        if fmt == "gguf":
            from app.formats.gguf import read_gguf
            src = await store.source(specs[0].cache_key)
            try:
                return await Tokenizer.from_gguf(await read_gguf(src))
            finally:
                src.close()
        from app.store.load import read_cached
        by_name = {s.label: s for s in specs}
        if "tokenizer.json" not in by_name:
            raise FileNotFoundError("a safetensors model needs its tokenizer.json among its files "
                                    "(and tokenizer_config.json for the chat template)")
        config = None
        if "tokenizer_config.json" in by_name:
            config = (await read_cached(store, by_name["tokenizer_config.json"].cache_key)).decode()
        text = (await read_cached(store, by_name["tokenizer.json"].cache_key)).decode()
        return await Tokenizer.load(text, config)

    # -- environment ------------------------------------------------------------------------
    def versions(self) -> dict:
        import pyodide
        return {"python": sys.version.split()[0], "pyodide": pyodide.__version__,
                **{k: v for k, v in self._versions.items() if k != "pyodide"}}

    def emit(self, name: str, detail: dict) -> None:
        dev = self.device
        memory = dev.ledger.snapshot() if dev is not None else None
        self._post({"event": name, "detail": detail, "memory": memory})
