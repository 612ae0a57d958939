"""The catalog and cache side of LocalLLM (a mixin, like inference.py): which models exist,
which of their files this device stores, and the user's own models.

    await rt.get_cache()                 # models with stored files, other files, usage, quota
    await rt.delete_cached("qwen3-0.6b-q4_k_m")          # its files; -> get_cache()
    await rt.delete_cached_file(key)                     # one file of "other"; -> get_cache()
    await rt.add_model("https://host/x.gguf", name="X")  # a user model, kept across visits
    await rt.import_model_file(file, name="Mine")        # a local GGUF into the weight store
    await rt.remove_model(user_model_id)                 # and its stored files; -> get_cache()

User models (added by URL, imported, or loaded by URL/path) are saved as records
(catalog_parse.user_record) through the platform (browser: the settings IndexedDB, key
"user-models"; natively: this process only) and restored when the catalog is first built.
A model that is loading (or queued to load) is busy: deleting or replacing its files raises
ModelBusyError and changes nothing. The loaded model's files may be deleted: its weights are
already on the GPU, so it keeps answering (a later init downloads them again).

Uses the service's catalog, platform, _events, _loaded, _loads, _state, _model.
"""
from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit

from .catalog_model import CatalogError, CatalogModel
from .catalog_parse import from_user_record, import_id, quant_of, user_record
from .errors import ModelNotFoundError
from .events import LoadProgress

log = logging.getLogger("app.runtime")


class ModelBusyError(RuntimeError):
    """The model is loading (or queued to load): its files cannot be deleted or replaced now."""


class ModelURLError(ValueError):
    """add_model() got something that is not an http(s) URL of a GGUF file or of a
    safetensors checkpoint's files."""


class ModelNotRemovableError(ValueError):
    """remove_model() of a preset or the bundled model (only user models can be removed)."""


class CachedFileNotFoundError(LookupError):
    """delete_cached_file() of a key the weight store does not hold."""


class ImportedFileMissingError(FileNotFoundError):
    """An imported model's file is no longer in the weight store (it has no URL to fetch it
    from again)."""


def _file_row(f: dict) -> dict:
    return {"key": f["key"], "name": f["name"], "bytes": f["bytes"], "complete": f["complete"]}


class CatalogOps:
    # -- the catalog ------------------------------------------------------------------------
    async def catalog(self):
        """The Catalog: presets merged with the platform's bundled models and the user models
        saved on this device (made once)."""
        if self._catalog is None:
            from .catalog import Catalog
            bundled = await self.platform.bundled_models()
            catalog = Catalog.load(bundled=bundled, base_url=getattr(self.platform, "site", None))
            await self._restore_user_models(catalog)
            self._catalog = catalog
        return self._catalog

    async def _restore_user_models(self, catalog) -> None:
        """Put the saved user models into `catalog`; a record that no longer parses is skipped
        (logged): a stale setting must not keep the catalog from loading."""
        try:
            records = await self.platform.user_models()
        except Exception:  # noqa: BLE001 - the presets still work without the settings store
            log.exception("could not read the saved user models")
            return
        for d in records or []:
            try:
                catalog.put(from_user_record(d))
            except CatalogError as e:
                log.warning("skipping a saved user model: %s", e)

    async def _save_user_models(self) -> None:
        catalog = await self.catalog()
        await self.platform.save_user_models([user_record(m) for m in catalog.user_models()])

    async def add_model(self, urls, *, name: str | None = None, gated: bool = False) -> dict:
        """Add a user model by its GGUF URL (or a safetensors checkpoint's URLs: config.json,
        model.safetensors or its index, tokenizer files); it is kept across visits. Its dict.
        ModelURLError for anything else (not http(s), not a GGUF or safetensors set)."""
        catalog = await self.catalog()
        urls = list(urls) if isinstance(urls, (list, tuple)) else [urls]
        if not urls:
            raise ModelURLError("no URL given: give the address of a .gguf file")
        for u in urls:
            full = urljoin(catalog.base_url, u) if catalog.base_url and isinstance(u, str) else u
            if not isinstance(u, str) or urlsplit(full).scheme not in ("http", "https"):
                raise ModelURLError(f"{u!r} is not an http(s) URL. Give the address of a .gguf "
                                    "file (or of a safetensors checkpoint's config.json, "
                                    "model.safetensors and tokenizer files).")
        try:
            entry = catalog.add(urls, name=name, hf_token_required=gated)
        except CatalogError as e:
            raise ModelURLError(f"cannot add this model: {e}. A model is one .gguf file, or "
                                "config.json plus model.safetensors (or its index) and its "
                                "tokenizer files.") from None
        if entry.user_added:
            entry = await self.platform.with_size(entry)
            catalog.replace(entry)
            await self._save_user_models()
        return entry.to_dict()

    async def remove_model(self, model_id: str) -> dict:
        """Remove a user model and its stored files; -> get_cache(). ModelNotRemovableError
        for a preset, ModelBusyError while it loads."""
        catalog = await self.catalog()
        m = catalog.get(model_id)
        if not m.user_added:
            raise ModelNotRemovableError(f"{m.name} is one of the built-in models and cannot be "
                                         "removed; delete its downloaded files instead "
                                         "(deleteCached).")
        self._check_not_busy(m, "remove it")
        await self._delete_files(m)
        catalog.remove(m.id)
        await self._save_user_models()
        return await self.get_cache()

    # -- the cache manager ------------------------------------------------------------------
    async def get_cache(self) -> dict:
        """{"models": [{"id", "name", "bytes" (stored), "size" (expected total or None),
        "complete", "partial", "loaded", "files": [{"key", "name", "bytes", "complete"}]}]
        (models with at least one stored file), "other": [stored files of no catalog model],
        "usage", "quota", "persisted"}."""
        catalog = await self.catalog()
        stored = {f["key"]: f for f in await self.platform.cache_files()}
        loaded = self._loaded.entry.id if self._loaded is not None else None
        claimed, models = set(), []
        for m in catalog.all():
            keys = self._model_keys(m, stored)
            got = [stored[k] for k in keys if k in stored]
            claimed.update(keys)
            if not got:
                continue
            done = sum(f["bytes"] for f in got)
            complete = len(got) == len(keys) and all(f["complete"] for f in got)
            size = m.size
            if size is None and len(got) == len(keys) and all(f["size"] for f in got):
                size = sum(f["size"] for f in got)      # a user model: the sizes the store learnt
            models.append({"id": m.id, "name": m.name, "bytes": done, "size": size,
                           "complete": complete, "partial": not complete and done > 0,
                           "loaded": m.id == loaded, "files": [_file_row(f) for f in got]})
        other = [_file_row(f) for k, f in stored.items() if k not in claimed]
        return {"models": models, "other": other, **await self.platform.storage_estimate()}

    def _model_keys(self, m: CatalogModel, stored: dict) -> list[str]:
        """The store keys of `m`'s files, plus the shards a safetensors index named (they are
        downloaded from next to the index, so they are not among the entry's files)."""
        keys = list(self.platform.cache_keys(m))
        index = [f.url for f in m.files if f.label == "model.safetensors.index.json" and f.url]
        if index:
            folder = index[0].rsplit("/", 1)[0] + "/"
            keys += [k for k, f in stored.items() if k not in keys and (f.get("url") or "")
                     .startswith(folder) and f["name"].endswith(".safetensors")]
        return keys

    async def delete_cached(self, model_id: str) -> dict:
        """Delete every stored file (all chunks and records) of a catalog model; -> get_cache().
        ModelBusyError (nothing deleted) while it loads; the loaded model may be deleted."""
        m = (await self.catalog()).get(model_id)
        self._check_not_busy(m, "delete its files")
        await self._delete_files(m)
        return await self.get_cache()

    async def delete_cached_file(self, key: str) -> dict:
        """Delete one stored file by its key (the "other" files of get_cache()); ->
        get_cache(). CachedFileNotFoundError for an unknown key."""
        catalog = await self.catalog()
        stored = {f["key"]: f for f in await self.platform.cache_files()}
        if key not in stored:
            raise CachedFileNotFoundError(f"no stored file {key!r}; get_cache() lists them")
        for m in catalog.all():
            if key in self._model_keys(m, stored):
                self._check_not_busy(m, "delete its files")
        await self.platform.delete_cache_file(key)
        return await self.get_cache()

    async def _delete_files(self, m: CatalogModel) -> None:
        stored = {f["key"]: f for f in await self.platform.cache_files()}
        for key in self._model_keys(m, stored):
            if key in stored:
                await self.platform.delete_cache_file(key)

    def _busy_ids(self) -> set[str]:
        """Lower-case ids of the model loading now and of every queued load."""
        busy = {str(self._model).lower()} if self._state == "loading" and self._model else set()
        catalog = self._catalog
        for ld in self._loads:
            if ld.task.done():
                continue
            try:
                busy.add((catalog.get(ld.model_id) if ld.model_id is not None
                          else catalog.default()).id.lower())
            except (ModelNotFoundError, StopIteration, AttributeError):
                busy.add(str(ld.model_id).lower())
        return busy

    def _check_not_busy(self, m: CatalogModel, what: str) -> None:
        if m.id.lower() in self._busy_ids():
            raise ModelBusyError(f"{m.name} is loading: cancel the load (cancelLoad) or wait "
                                 f"until it is ready, then {what}. Nothing was deleted.")

    # -- importing a local file -------------------------------------------------------------
    async def import_model_file(self, file, *, name: str | None = None) -> dict:
        """Copy a local GGUF file (browser: a File/Blob the user picked or dropped; natively a
        path) into the weight store with "progress" events (phase "import"), check that the
        engine can load it (GGUF magic and header, tensors inside the file, a supported
        architecture, a vocabulary), and add it as a user model kept across visits; its dict.
        init(its id) then loads it from the store with no network request. A bad file raises
        the parser's named error (BadMagicError, TruncatedFileError, TensorOutOfRangeError,
        UnsupportedArchitectureError, ...) and leaves nothing in the store or the catalog."""
        catalog = await self.catalog()
        info = self.platform.file_info(file)
        filename = str(info.get("name") or "model.gguf")
        if not filename.lower().endswith(".gguf"):
            filename += ".gguf"        # the engine tells formats by the file name's suffix
        model_id = import_id(filename, int(info["size"]))
        try:
            old = catalog.get(model_id)
        except ModelNotFoundError:
            old = None
        if old is not None:
            self._check_not_busy(old, "import it again")
        tracker = LoadProgress(lambda d: self._events.emit("progress", d), share=1.0)
        spec, cfg = await self.platform.import_file(file, model_id, filename, tracker.platform)
        entry = CatalogModel(model_id, name or filename[:-5], "gguf", False, (spec,),
                             quantization=quant_of(filename), file_sizes=(spec.size,),
                             size_exact=True, user_added=True, imported=True)
        entry = catalog.put(entry.with_config(cfg))
        await self._save_user_models()
        return entry.to_dict()
