"""app/models/host_repack.py in headless Chromium (SwiftShader: a CPU adapter, where the loader
takes this path): its bytes equal shaders/repack.wgsl's (app.kernels.quant.upload_weight on the
same page) and tests/quant_data.py's numpy model of the repack, for every repacked type; with
parts stacked by rows, several binding-sized chunks and several scratch pieces per chunk, and
f16 scales that exercise the exact m = -8 d / -16 d (zeros of both signs, subnormals, the largest
finite results)."""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.layouts import GGUF_BLOCK
from tests.browser.harness import browser_run, harness_page  # noqa: F401 (fixture)
from tests.quant_data import internal_row_bytes, random_weight, to_internal

# f16 bit patterns for d: +-0, subnormals (smallest, largest, a middle one), the smallest normal,
# ordinary values, and the largest |d| whose -8 d (Q4_0) / -16 d (Q5_0) is still finite.
SPECIAL_D = {"Q4_0": [0x0000, 0x8000, 0x0001, 0x83FF, 0x0155, 0x0400, 0x3C00, 0xB800, 0x6FFF,
                      0xEFFF],
             "Q5_0": [0x0000, 0x8000, 0x0001, 0x83FF, 0x0155, 0x0400, 0x3C00, 0xB800, 0x6BFF,
                      0xEBFF]}


def _weight(t, rows, cols, rng):
    raw = random_weight(t, rows, cols, rng)
    if t in SPECIAL_D:
        blocks = raw.reshape(-1, GGUF_BLOCK[t][1])
        special = np.array(SPECIAL_D[t], np.uint16).view(np.uint8).reshape(-1, 2)
        at = rng.choice(len(blocks), size=len(special), replace=False)
        blocks[at, 0:2] = special
    return raw


@pytest.mark.parametrize("t", ["Q4_0", "Q5_0", "Q8_0", "Q6_K"])
def test_host_repack_equals_the_shader_and_the_numpy_model(harness_page, t):
    rng = np.random.default_rng()
    cols = 256 * int(rng.integers(1, 4))
    parts = [int(r) for r in rng.integers(5, 40, size=3)]          # stacked tensors' rows
    raws = [_weight(t, r, cols, rng) for r in parts]
    rows, row_b = sum(parts), internal_row_bytes(t, cols)
    per_chunk = int(rng.integers(7, 30))                             # rows per binding chunk
    outs = browser_run(harness_page, f"""
from js import Uint8Array
from pyodide.ffi import to_js
from app.models import host_repack
from app.kernels.quant import upload_weight

def js(b):
    return to_js(memoryview(b))

parts = [(js(inputs[f"p{{i}}"]), r) for i, r in enumerate({parts})]
assert host_repack.applies(dev, {t!r}, parts), "SwiftShader should be a CPU adapter"
host_repack.PIECE_BYTES = 3 * {row_b}                                 # several pieces per chunk
w = await host_repack.upload(dev, "w", {t!r}, parts, {cols}, max_chunk_bytes={per_chunk * row_b})
assert [c.rows for c in w.chunks][:-1] == [{per_chunk}] * (len(w.chunks) - 1)
assert sum(c.rows for c in w.chunks) == {rows}
out("host", b"".join([await dev.read(c.buffer) for c in w.chunks]), "uint8")
joined = b"".join(inputs[f"p{{i}}"] for i in range({len(parts)}))
g = await upload_weight(dev, "g", {t!r}, joined, {rows}, {cols})
out("gpu", b"".join([await dev.read(c.buffer) for c in g.chunks]), "uint8")
await dev.check("host repack test")
w.destroy(dev)
g.destroy(dev)
""", {f"p{i}": raw for i, raw in enumerate(raws)})
    model = np.concatenate([to_internal(t, raw) for raw in raws])
    assert outs["host"].size == rows * row_b
    np.testing.assert_array_equal(outs["host"], model)
    np.testing.assert_array_equal(outs["host"], outs["gpu"])


def test_host_repack_refuses_a_short_tensor(harness_page):
    raw = random_weight("Q8_0", 4, 64)
    outs = browser_run(harness_page, """
from pyodide.ffi import to_js
from app.models import host_repack
from app.kernels.quant import WeightSizeError
try:
    await host_repack.upload(dev, "w", "Q8_0", [(to_js(memoryview(inputs["raw"])[:-34]), 4)], 64)
except WeightSizeError as e:
    assert "truncated or corrupt" in str(e), e
    out("ok", b"\\1", "uint8")
""", {"raw": raw})
    assert outs["ok"][0] == 1
