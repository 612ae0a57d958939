"""Benchmarks (scripts, not tests): `python -m app.bench dispatch | kernels` (see __main__.py).

    dispatch.py   host cost per dispatch: Device.dispatch per call vs a replayed Plan
    kernels.py    matvec GB/s per weight layout over the streaming-read peak of a probe kernel
    browser.py    headless Chromium + the kernel harness page (also used by tests/browser)
    pyrunner.py   the harness's in-page runner (Pyodide side)
    node/run.mjs  kernels.py under Node.js + Pyodide on Dawn (npm package `webgpu`)

Results and commands: docs/benchmarks.md. The modules that run on the GPU (dispatch.py,
kernels.py) are plain Python without numpy, so they run natively, in the page and in Node alike.
"""
