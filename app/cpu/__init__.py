"""The CPU backend: llama.cpp compiled to WebAssembly (the npm package @wllama/wllama, vendored
by build.py) for machines without a usable WebGPU. It runs the same GGUF bytes the weight cache
holds, behind the same model interface the runtime drives on WebGPU (model.py), so chat
templates, tokenization, stop strings, streaming, usage and interrupt are the runtime's own.

    wllama.py  the JS edge (every `from js import` of the CPU backend): load the module, open an
               engine on a Blob of the model file, stream completions, abort, exit
    model.py   CpuModel: Model.generate/reset/destroy/stats over an engine

Browser only: under CPython there is no wllama (CpuBackendUnavailableError).
"""
from .errors import CpuBackendError, CpuBackendUnavailableError

__all__ = ["CpuBackendError", "CpuBackendUnavailableError"]
