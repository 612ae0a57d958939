"""Fidelity 1: the engine's logits on tiny random models of all seven families, loaded from HF
safetensors and from GGUF (F32, F16, Q8_0), against transformers' forward pass.

Oracle: tests/tiny_models.reference_logits (transformers 5.24, eager attention, float64 copy of
the weights). For F16 and Q8_0 files the oracle runs on the GGUF's own weights, dequantized
with gguf-py and with the converter's edits undone (tiny_models.gguf_to_hf), so the comparison
measures the engine and not the quantization (which moves these logits by 0.1% for F16 and
1-2% for Q8_0: see test_tiny_models).

Error measure: max |ours - ref| / max |ref| over the whole (40, vocab) array.
Bound: 1e-4 for every format, tighter than issue 4's 1e-3 for F32 weights.
  - Why it holds: the engine computes in f32; f32 accumulation over <= 128-long dot products,
    softmax and 2-6 layers measured 3e-7 .. 9e-7 on lavapipe for all 28 cases (every family x
    format), so 1e-4 leaves a 100x margin for other adapters' summation orders.
  - F16 and Q8_0 use the same bound: both sides use the same rounded weights, so the f16/int8
    rounding is not in the difference (measured: the same ~5e-7; against the original f32
    weights the error would be 2e-4..1.3e-3 for F16 and 1-3% for Q8_0). What remains is
    accumulation order; an engine that dequantizes differently from gguf-py is off by > 1e-2.
  - Why it is tight enough: with the original transformers forward as oracle, each family's
    feature moves these logits far past it (measured): llama3 scaling off 0.69, gemma2 attention
    softcap off 0.04 and final softcap off 2.4, window w+1 instead of w 0.17 (gemma3) / 0.36
    (gemma2), gemma3 local base 10000 instead of 20000 0.017, phi3 short instead of long
    factors 0.9.
Greedy check: at every position where the reference's top-1 beats the runner-up by more than
2 x the bound x max|ref| (so the allowed error cannot flip it), the engine's argmax must agree.
On failure the message gives the seed, the first position past the bound and the per-position
error profile (a window or RoPE bug starts at a telling position: 8 for the windows, 32 for
phi3's original context).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests import tiny_models as tm

FORMATS = ("hf", "hf_sharded", "F32", "F16", "Q8_0")   # hf_sharded: index.json + ~40 KB shards
REL_BOUND = dict.fromkeys(FORMATS, 1e-4)


@pytest.fixture(scope="module", params=tm.FAMILIES)
def family_model(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    return tm.build(request.param, d / "hf"), d


async def _engine_logits(gpu, source, ids) -> np.ndarray:
    from app.models import load_model   # the engine; imported late so collection never fails
    model = await load_model(gpu, str(source), context_length=64, kv_dtype="f32")
    try:
        raw = await model.logits(ids)
        vocab = model.config.vocab_size
    finally:
        model.destroy()
    return np.frombuffer(bytes(raw), dtype="<f4").reshape(len(ids), vocab).astype(np.float64)


def _report(ours: np.ndarray, ref: np.ndarray, bound: float) -> str:
    """Where the error starts: the first position whose row error passes the bound, and the
    per-position profile (a window or rope bug shows up from a given position on)."""
    scale = np.abs(ref).max()
    rows = np.abs(ours - ref).max(axis=1) / scale
    bad = np.nonzero(rows > bound)[0]
    first = int(bad[0]) if len(bad) else None
    return (f"max rel err {rows.max():.3g} (bound {bound}); first bad position {first}; "
            f"per-position rel err: {np.array2string(rows, precision=1, max_line_width=200)}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_logits_match_transformers(gpu, run, family_model, fmt):
    model, d = family_model
    ids = tm.random_ids()
    if fmt == "hf":
        source, ref_model = model.hf_dir, model.model
    elif fmt == "hf_sharded":
        source = tm.build(model.family, d / "sharded", sharded=True, seed=model.seed).hf_dir
        assert (source / "model.safetensors.index.json").exists()
        ref_model = model.model     # same seed: the same weights
    else:
        source = tm.write_gguf(model.model, d / f"{model.family}-{fmt}.gguf", fmt)
        ref_model = model.model if fmt == "F32" else tm.gguf_to_hf(model.model, source)
    ref = tm.reference_logits(ref_model, ids)
    ours = run(_engine_logits(gpu, source, ids))
    assert ours.shape == ref.shape
    assert np.isfinite(ours).all(), f"{model.family}/{fmt}: non-finite logits (seed {model.seed})"
    bound = REL_BOUND[fmt]
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    assert err <= bound, f"{model.family}/{fmt} seed {model.seed}: {_report(ours, ref, bound)}"

    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * bound * np.abs(ref).max()
    assert clear.sum() >= len(ids) // 2, "too few decisive positions: the check would be empty"
    mism = np.nonzero(clear & (ours.argmax(1) != ref.argmax(1)))[0]
    assert not len(mism), f"{model.family}/{fmt}: greedy token differs at positions {mism}"
