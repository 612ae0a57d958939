"""Named errors of the weight store. Each message says what happened and what the user can do."""
from __future__ import annotations


class StoreError(RuntimeError):
    """Base of every weight-store error (also: IndexedDB itself failed or is unavailable)."""


class DownloadError(StoreError):
    """A file could not be downloaded: an HTTP status (`status`) or a network failure (`cause`:
    NetworkError, StallError, LengthError...). `retryable` says whether trying later may help."""

    def __init__(self, url: str, message: str, status: int | None = None,
                 cause: str | None = None, retryable: bool = False):
        self.url, self.status, self.cause, self.retryable = url, status, cause, retryable
        what = f"HTTP {status}" if status else (cause or "error")
        super().__init__(f"download of {url} failed ({what}): {message}")


class QuotaError(StoreError):
    """Not enough storage for a file: `needed` bytes vs `available` (None when unknown)."""

    def __init__(self, what: str, needed: int, available: int | None):
        self.needed, self.available = needed, available
        have = "an unknown amount" if available is None else f"{available / 1e6:,.1f} MB"
        super().__init__(f"not enough storage for {what}: it needs {needed / 1e6:,.1f} MB and this "
                         f"site may use {have} more. Delete cached models or free disk space, "
                         f"then try again.")


class IntegrityError(StoreError):
    """Stored or downloaded bytes do not match their sha256 (or size), and could not be repaired."""


class NotCachedError(StoreError):
    """The file is not (completely) in the cache."""
