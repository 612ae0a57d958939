"""LocalLLM: a private LLM chat engine in Python on WebGPU (Pyodide in the page, wgpu-py natively)."""
__version__ = "0.1.0"
