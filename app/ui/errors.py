"""What the dashboard tells a person about a named error: a title, the engine's own message
(each named error says what to do) and the one action that helps, if there is one. Pure data,
unit-tested; app/ui/toasts.py shows it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    title: str
    remedy: str               # a sentence on what to do, shown under the engine's message
    action: str | None        # "retry" | "reload" | "cache" | "clear" | None


_ADVICE = {
    "WebGPUUnavailableError": Advice(
        "WebGPU is unavailable",
        "Use a recent Chrome or Edge with hardware acceleration on; models can still run on the "
        "CPU backend, more slowly.", None),
    "DeviceLostError": Advice(
        "The GPU was reset", "The driver or the browser took the GPU away. Load the model again "
        "to continue; your conversation is kept.", "retry"),
    "GPUOutOfMemoryError": Advice(
        "Out of GPU memory", "Pick a smaller model or a shorter context, or close other GPU-heavy "
        "tabs.", "retry"),
    "ModelMemoryError": Advice(
        "The model does not fit in GPU memory", "Pick a smaller model or quantization.", None),
    "QuotaError": Advice(
        "Not enough storage space", "Delete cached models in the cache manager, or free disk "
        "space, then try again.", "cache"),
    "QuotaExceededError": Advice(
        "Not enough storage space", "Delete cached models in the cache manager, or free disk "
        "space, then try again.", "cache"),
    "DownloadError": Advice(
        "The download failed", "Check the connection and try again: the part already downloaded "
        "is kept and the download resumes.", "retry"),
    "NetworkError": Advice(
        "The download failed", "Check the connection and try again: the part already downloaded "
        "is kept and the download resumes.", "retry"),
    "StallError": Advice(
        "The download stalled", "The server stopped sending data. Try again; it resumes.",
        "retry"),
    "IntegrityError": Advice(
        "A downloaded file was corrupt", "It was removed; try again to download it afresh.",
        "retry"),
    "PromptTooLongError": Advice(
        "The message is too long for this model", "Shorten it, or clear the conversation.",
        "clear"),
    "NotLoadedError": Advice("No model is loaded", "Pick a model first.", None),
    "LoadCancelledError": Advice(
        "Loading cancelled", "The part already downloaded is kept; loading again resumes it.",
        None),
    "EngineStartError": Advice(
        "The engine could not start", "Reload the page; if it keeps failing, clear this site's "
        "data and reload.", "reload"),
    "EngineError": Advice("The engine stopped", "Reload the page.", "reload"),
    "CpuBackendError": Advice(
        "The CPU backend failed", "Try again, or pick a smaller model.", "retry"),
}

_FAMILIES = (
    ("GGUFError", Advice("This is not a model file the engine can read",
                         "Pick a .gguf model file of a supported family.", None)),
    ("SafetensorsError", Advice("This checkpoint cannot be read",
                                "Check that the files are a complete safetensors checkpoint.",
                                None)),
    ("Remote", Advice("The remote server failed",
                      "Check the remote fallback settings (URL, key, model).", "retry")),
    ("Unsupported", Advice("This model is not supported",
                           "Pick a model from the list, or a GGUF of a supported family "
                           "(Llama, Qwen, Phi, Gemma, SmolLM).", None)),
)

GENERIC = Advice("Something went wrong", "Try again; if it keeps failing, reload the page.",
                 "retry")

# Subclasses of GGUFError that the worker reports by their own names.
_GGUF_NAMES = {"BadMagicError", "UnsupportedVersionError", "TruncatedFileError",
               "MetadataTooLargeError", "DimensionOverflowError", "UnknownTensorTypeError",
               "TensorOutOfRangeError", "TensorOverlapError", "GGUFFormatError"}


def advice(name: str | None) -> Advice:
    """The advice for an error class name (as the worker reports it)."""
    name = name or ""
    if name in _ADVICE:
        return _ADVICE[name]
    if name in _GGUF_NAMES:
        return _FAMILIES[0][1]
    for part, adv in _FAMILIES:
        if part in name:
            return adv
    return GENERIC
