"""The runtime API: LocalLLM (service.py), platform-independent, over a Platform (platform.py):
NativePlatform (native.py, CPython + wgpu-py) or the browser one. Errors in errors.py."""
from .errors import ModelNotFoundError, NotLoadedError, PromptTooLongError, RuntimeBusyError

__all__ = ["LocalLLM", "ModelNotFoundError", "NotLoadedError", "PromptTooLongError",
           "RuntimeBusyError"]


def __getattr__(name):
    # Imported lazily so that `from app.runtime.errors import ...` (catalog, browser worker) does not
    # pull in the service and its engine imports.
    if name == "LocalLLM":
        from .service import LocalLLM
        return LocalLLM
    raise AttributeError(name)
