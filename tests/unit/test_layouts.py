"""app/kernels/layouts.py: the layout table is consistent; the size helpers refuse bad shapes."""
from __future__ import annotations

import pytest

from app.kernels.layouts import (GGML_TYPES, GGUF_BLOCK, LAYOUT_BLOCK, LAYOUT_OF, NEEDS_REPACK,
                                 row_bytes, rows_per_chunk)


def test_every_ggml_type_has_a_gguf_block_and_an_internal_layout():
    assert set(LAYOUT_OF) == set(GGML_TYPES) == set(GGUF_BLOCK)
    assert set(LAYOUT_OF.values()) == set(LAYOUT_BLOCK)
    assert len(set(GGML_TYPES.values())) == len(GGML_TYPES)  # type ids are distinct


def test_internal_blocks_are_word_aligned_and_hold_the_same_elements():
    for t, layout in LAYOUT_OF.items():
        elems, nbytes = LAYOUT_BLOCK[layout]
        assert elems == GGUF_BLOCK[t][0], t
        # A repack never drops bytes; it adds at most one 2-byte field.
        assert nbytes - GGUF_BLOCK[t][1] in (0, 2), t
        # f16/bf16 elements are 2 bytes, paired in u32 words; every block layout is 4-aligned.
        if elems > 1:
            assert nbytes % 4 == 0, layout
            assert elems % 4 == 0, layout  # dq4 (4 consecutive elements) never crosses a block


def test_repacked_types_are_exactly_the_unaligned_ones():
    unaligned = {t for t, (elems, nbytes) in GGUF_BLOCK.items() if elems > 1 and nbytes % 4}
    assert NEEDS_REPACK == unaligned
    for t in GGUF_BLOCK:
        assert (LAYOUT_BLOCK[LAYOUT_OF[t]][1] != GGUF_BLOCK[t][1]) == (t in NEEDS_REPACK), t


@pytest.mark.parametrize("layout,cols,expected", [
    ("f32", 7, 28), ("f16", 7, 14), ("bf16", 640, 1280), ("q4_1", 64, 40), ("q5_1", 32, 24),
    ("q8_0a", 96, 108), ("q4_k", 512, 288), ("q5_k", 256, 176), ("q6_ka", 768, 636)])
def test_row_bytes(layout, cols, expected):
    assert row_bytes(layout, cols) == expected


@pytest.mark.parametrize("layout,cols", [("q4_1", 33), ("q8_0a", 16), ("q4_k", 128),
                                         ("q6_ka", 257)])
def test_row_bytes_rejects_partial_blocks(layout, cols):
    with pytest.raises(ValueError, match="not a multiple"):
        row_bytes(layout, cols)


def test_rows_per_chunk():
    # Gemma-3's 262144 x 640 Q8_0 embedding (720 B a row) on a 128 MiB binding: 2 chunks.
    per = rows_per_chunk("q8_0a", 640, 128 << 20)
    assert per == (128 << 20) // 720 and -(-262144 // per) == 2
    assert rows_per_chunk("f32", 4, 16) == 1
    assert rows_per_chunk("f32", 4, 31) == 1
    with pytest.raises(ValueError, match="exceeds the max storage binding"):
        rows_per_chunk("f32", 4, 15)
    with pytest.raises(ValueError, match="not a multiple"):
        rows_per_chunk("q4_k", 100, 1 << 20)
