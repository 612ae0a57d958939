"""Named errors of the CPU backend."""


class CpuBackendUnavailableError(RuntimeError):
    """The CPU backend cannot run here (not in a browser, or the site lacks the vendored
    wllama files); the message says what to do instead."""


class CpuBackendError(RuntimeError):
    """wllama failed: the model could not be loaded on the CPU, or a completion failed. After a
    failure the engine is closed; init() loads the model again."""
