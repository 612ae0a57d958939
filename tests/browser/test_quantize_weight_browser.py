"""Load-time quantization (app/kernels/quantize_weight.py) in headless Chromium: the browser
backend on SwiftShader, the source handed over as a JS Uint8Array (sliced per chunk with subarray,
as the safetensors loader does in the page), forced into 3 chunks. Oracle and tolerance are the
gpu tier's (tests/gpu/test_quantize_weight.py: gguf-py's quantize + dequantize; every element
within one step d, at most 1e-3 of them differing), fed with fresh random data each run."""
from __future__ import annotations

import numpy as np
import pytest

from tests.browser.harness import browser_run, harness_page  # noqa: F401 (fixture)
from tests.gpu.test_quantize_weight import check_against_oracle, encode, oracle, random_values


@pytest.mark.parametrize("src,to", [("BF16", "q8_0"), ("F16", "q4")])
def test_quantize_weight_matches_gguf(harness_page, src, to):
    rng = np.random.default_rng()
    rows, cols = 7, 256
    raw, x32 = encode(src, random_values(rows, cols, rng))
    outs = browser_run(harness_page, f"""
from pyodide.ffi import to_js
from app.kernels.dequant import dequantize
from app.kernels.quantize_weight import quantize_weight
raw = to_js(inputs["raw"])  # a JS Uint8Array: the path the page's loader takes
assert raw.BYTES_PER_ELEMENT == 1 and raw.byteLength == {len(raw)}, raw
w = await quantize_weight(dev, "w", "{src}", raw, {rows}, {cols}, "{to}",
                          max_chunk_bytes=3 * {len(raw) // rows})
assert [(c.row0, c.rows) for c in w.chunks] == [(0, 3), (3, 3), (6, 1)], w.chunks
y = await dequantize(dev, w)
out("y", await dev.read(y), "float32", ({rows}, {cols}))
w.destroy(dev)
dev.destroy_buffer(y)
out("live", str(dev.ledger.live.get("weights", 0) + dev.ledger.live.get("staging", 0)).encode(),
    "uint8", (-1,))
""", {"raw": raw})
    check_against_oracle(outs["y"], *oracle(x32, to), (src, to))
    assert bytes(outs["live"]) == b"0"
