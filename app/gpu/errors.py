"""Named GPU errors. Each message says what went wrong and what the user can do."""
from __future__ import annotations


class GPUError(RuntimeError):
    """Base class for every error raised by app.gpu."""


class WebGPUUnavailableError(GPUError):
    """No WebGPU implementation, or no adapter was granted."""

    def __init__(self, detail: str = ""):
        super().__init__(
            "WebGPU is not available" + (f" ({detail})" if detail else "") + ". Use Chrome or Edge "
            "113 or newer with hardware acceleration turned on (Settings > System). On Linux, enable "
            "chrome://flags/#enable-unsafe-webgpu and chrome://flags/#enable-vulkan, then restart "
            "the browser.")
        self.detail = detail


class GPUValidationError(GPUError):
    """The GPU rejected a call: a bug in a kernel, a binding or a size (the message says which)."""


class ShaderCompileError(GPUValidationError):
    """A WGSL file failed to compile; the message carries the compiler's diagnostics."""


class GPUOutOfMemoryError(GPUError):
    """An allocation did not fit in GPU memory."""

    def __init__(self, what: str, detail: str = ""):
        super().__init__(f"Out of GPU memory while {what}" + (f": {detail}" if detail else "")
                         + ". Close other GPU-heavy tabs or pick a smaller model.")


class DeviceLostError(GPUError):
    """The GPU device was lost (driver reset, tab in the background too long, device destroyed)."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(f"The GPU device was lost ({reason}): {message} Reload the model to "
                         "continue.")
        self.reason = reason
