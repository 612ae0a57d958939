"""Named errors of the runtime API. Each message says what to do.

The engine's errors (app.gpu, app.models, app.tokenizer) and the store's pass through unchanged;
these are the ones the runtime itself raises.
"""
from app.models import ContextLengthError


class ModelNotFoundError(LookupError):
    """A model id that is neither in the catalog nor an existing local path."""


class NotLoadedError(RuntimeError):
    """chat()/complete() before init() finished (or after unload())."""


class PromptTooLongError(ContextLengthError):
    """The prompt plus one generated token does not fit the model's context length.

    Attributes: prompt_tokens, context_length."""

    def __init__(self, message: str, prompt_tokens: int = 0, context_length: int = 0):
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


class RuntimeBusyError(RuntimeError):
    """An operation that needs the model idle (e.g. init while another init runs)."""


class DownloadError(RuntimeError):
    """A model file could not be downloaded (HTTP error, dropped connection after retries)."""


class IntegrityError(DownloadError):
    """A downloaded file's size or sha256 does not match the catalog entry; the file was removed."""
