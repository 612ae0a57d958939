"""The model catalog (models/catalog.json, written by build.py): which models the page offers,
their files with size and sha256, and whether they ship with the site (bundled).

    {"models": [{"id": str, "name": str, "format": "gguf", "bundled": bool,
                 "files": [{"url": str (relative to the catalog's URL, or absolute),
                            "size": int, "sha256": str}]}]}
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

from .download import FileSpec

CATALOG_PATH = "models/catalog.json"


class CatalogError(ValueError):
    """catalog.json is malformed; the message names the entry."""


@dataclass(frozen=True)
class ModelEntry:
    id: str
    name: str
    format: str
    bundled: bool
    files: tuple[FileSpec, ...]

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)


def parse_catalog(data: dict, catalog_url: str) -> list[ModelEntry]:
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise CatalogError("catalog.json needs a 'models' list")
    out = []
    for i, m in enumerate(models):
        try:
            files = tuple(FileSpec(url=urljoin(catalog_url, f["url"]), size=int(f["size"]),
                                   sha256=str(f["sha256"]).lower(), name=f["url"].rsplit("/", 1)[-1])
                          for f in m["files"])
            out.append(ModelEntry(str(m["id"]), str(m.get("name", m["id"])), str(m.get("format", "")),
                                  bool(m.get("bundled", False)), files))
        except (KeyError, TypeError, ValueError) as e:
            raise CatalogError(f"catalog entry {i} is malformed: {e!r}") from None
        if not files:
            raise CatalogError(f"catalog entry {m['id']!r} has no files")
    return out
