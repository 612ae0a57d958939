"""The model catalog: curated presets (catalog.json next to this module: data, not code), the
bundled model the site ships (build.py's models/catalog.json), and models users add by URL.

    cat = Catalog.load(bundled=models_of_bundled_catalog, base_url=page_url)
    cat.default()                        # the bundled SmolLM2
    cat.get("qwen3-0.6b-q4_k_m")         # ModelNotFoundError for an unknown id
    cat.add("https://huggingface.co/<owner>/<repo>/resolve/main/<file>.gguf")   # a user model
    cat.to_dicts()                       # available_models(), before the cached/partial flags

Entries are CatalogModels (catalog_model.py: an app.store ModelEntry plus metadata, memory
estimate, runnable()). Presets are validated on load (catalog_parse.py); a bad entry raises
CatalogError naming the entry and the field. Ids compare case-insensitively: build.py calls the
bundled model "SmolLM2-135M-Instruct-Q4_1", the preset is "smollm2-135m-instruct-q4_1".

catalog.json is read with Path(__file__), so it must travel with the package: build.py's app zip
has to include app/**/*.json for Pyodide.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import urljoin

from app.store.catalog import parse_catalog

from .catalog_model import CatalogError, CatalogModel
from .catalog_parse import model_from_urls, parse_preset, quant_of
from .errors import ModelNotFoundError
from .model_memory import Arch

PRESETS_PATH = Path(__file__).with_name("catalog.json")

__all__ = ["Arch", "Catalog", "CatalogError", "CatalogModel", "ModelNotFoundError",
           "PRESETS_PATH"]


def read_presets(path: Path = PRESETS_PATH) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError(str(path), "models", "must be a list of entries")
    return data["models"]


class Catalog:
    def __init__(self, models: list[CatalogModel], base_url: str | None = None):
        _check_catalog(models)
        self._models = list(models)
        self.base_url = base_url

    @classmethod
    def load(cls, presets: list[dict] | None = None, bundled=(), *, base_url: str | None = None,
             bundled_url: str | None = None) -> "Catalog":
        """Presets (default: catalog.json next to this module) merged with `bundled`, the
        "models" list of build.py's models/catalog.json ({id, name, format, bundled, files:
        [{url, size, sha256}]}), whose URLs are relative to `bundled_url` (default:
        models/catalog.json under base_url). A bundled entry gives its files to the preset with
        the same id and marks it bundled; one without a preset is added as it is. Relative
        preset URLs (the bundled file) resolve against base_url; without one they stay
        relative."""
        if presets is None:
            presets = read_presets()
        if not isinstance(presets, list):
            raise CatalogError("<catalog>", "models", "must be a list of entries")
        models = [parse_preset(d, i, base_url) for i, d in enumerate(presets)]
        if bundled_url is None and base_url is not None:
            bundled_url = urljoin(base_url, "models/catalog.json")
        where = {m.id.lower(): i for i, m in enumerate(models)}
        for e in parse_catalog({"models": list(bundled)}, bundled_url or ""):
            sizes = tuple(f.size for f in e.files)
            i = where.get(e.id.lower())
            if i is None:
                where[e.id.lower()] = len(models)
                models.append(CatalogModel(e.id, e.name, e.format, True, e.files,
                                           quantization=quant_of(e.files[0].label),
                                           file_sizes=sizes, size_exact=True))
            else:
                models[i] = replace(models[i], files=e.files, bundled=True, file_sizes=sizes,
                                    size_exact=True)
        return cls(models, base_url)

    def get(self, model_id: str) -> CatalogModel:
        """The entry with this id (any case); ModelNotFoundError lists some valid ids."""
        for m in self._models:
            if m.id.lower() == str(model_id).lower():
                return m
        ids = [m.id for m in self._models]
        shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
        raise ModelNotFoundError(f"no model {model_id!r} in the catalog; known ids: {shown} "
                                 "(available_models() lists them all). A model that is not "
                                 "listed can be added by the URL of its GGUF or safetensors "
                                 "files.")

    def default(self) -> CatalogModel:
        return next(m for m in self._models if m.default)

    def all(self) -> list[CatalogModel]:
        return list(self._models)

    def add(self, urls, *, name: str | None = None,
            hf_token_required: bool = False) -> CatalogModel:
        """A user model from the URL of one GGUF file, or the URLs of a safetensors checkpoint
        (config.json plus model.safetensors or its index, shards, tokenizer files). Relative
        URLs resolve against base_url. The id derives from the URLs, so adding the same URLs
        again returns the same entry (also when they are a preset's)."""
        urls = [urls] if isinstance(urls, str) else list(urls)
        resolved = [urljoin(self.base_url, u) if self.base_url else u for u in urls]
        for m in self._models:
            if sorted(f.url for f in m.files) == sorted(resolved):
                return m
        model = model_from_urls(resolved, name=name, gated=hf_token_required)
        self._models.append(model)
        return model

    def replace(self, model: CatalogModel) -> None:
        """Put `model` in place of the entry with its id (e.g. model.with_config(cfg) once a
        user model's header has been read)."""
        for i, m in enumerate(self._models):
            if m.id == model.id:
                self._models[i] = model
                return
        raise ModelNotFoundError(f"no model {model.id!r} in the catalog to replace")

    def put(self, model: CatalogModel) -> CatalogModel:
        """Add a user model built elsewhere (an imported file, a restored record), or replace
        the user model with its id. A preset's id is refused (CatalogError)."""
        for i, m in enumerate(self._models):
            if m.id.lower() == model.id.lower():
                if not m.user_added:
                    raise CatalogError(model.id, "id", "is a preset's; a user model needs "
                                       "another id")
                self._models[i] = model
                return model
        self._models.append(model)
        return model

    def remove(self, model_id: str) -> CatalogModel:
        """Take a user model out; the entry removed. ModelNotFoundError for an unknown id,
        CatalogError for a preset or the bundled model (they cannot be removed)."""
        m = self.get(model_id)
        if not m.user_added:
            raise CatalogError(m.id, "user_added", "is false: presets and the bundled model "
                               "cannot be removed (their cached files can be deleted)")
        self._models.remove(m)
        return m

    def user_models(self) -> list[CatalogModel]:
        return [m for m in self._models if m.user_added]

    def to_dicts(self) -> list[dict]:
        return [m.to_dict() for m in self._models]


def _check_catalog(models: list[CatalogModel]) -> None:
    seen: dict[str, str] = {}
    for m in models:
        if m.id.lower() in seen:
            raise CatalogError(m.id, "id", f"is not unique (also {seen[m.id.lower()]!r})")
        seen[m.id.lower()] = m.id
    defaults = [m.id for m in models if m.default]
    if len(defaults) != 1:
        raise CatalogError("<catalog>", "default",
                           f"must be true for exactly one entry, is for {defaults or 'none'}")
