"""Model weights: download (HTTP Range, resume, retries) -> IndexedDB chunks (sha256 each) ->
byte sources the format readers and the GPU uploader read from.

Python decides (plan.py: what to fetch and what an answer means; download.py: attempts, retries,
verification; progress.py: speed and ETA); static/store.js moves the bytes (browser.py is the
only JS edge). Local files the user picks go through app.formats.sources.BlobSource, and
Store.save_blob copies one into the cache.
"""
from .cache import CachedFile, Store, Usage
from .catalog import CATALOG_PATH, CatalogError, ModelEntry, parse_catalog
from .download import FileSpec
from .errors import DownloadError, IntegrityError, NotCachedError, QuotaError, StoreError
from .plan import DEFAULT_CHUNK_SIZE
from .progress import Progress

__all__ = ["CATALOG_PATH", "CatalogError", "DEFAULT_CHUNK_SIZE", "DownloadError", "FileSpec",
           "IntegrityError", "ModelEntry", "NotCachedError", "Progress", "QuotaError", "Store",
           "StoreError", "parse_catalog", "CachedFile", "Usage"]

