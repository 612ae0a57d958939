"""A GGUF's embedded tokenizer (tokenizer.ggml.*) -> an equivalent tokenizer.json dict, so one
tokenizer implementation (@huggingface/tokenizers in the page, `tokenizers` in CPython) serves
both file kinds.

GGUF keys read:
    tokenizer.ggml.model        "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE, byte fallback)
    tokenizer.ggml.pre          pre-tokenizer name for gpt2 vocabularies (llama.cpp's names)
    tokenizer.ggml.tokens       [str] x n_vocab      token id -> piece
    tokenizer.ggml.token_type   [int] x n_vocab      1 normal, 2 unknown, 3 control,
                                                     4 user-defined, 5 unused, 6 byte
    tokenizer.ggml.scores       [f32] x n_vocab      SentencePiece piece scores (llama only)
    tokenizer.ggml.merges       ["a b"]              BPE merges by rank (gpt2 only)
    tokenizer.ggml.{bos,eos,unknown,padding}_token_id, add_bos_token, add_eos_token,
    add_space_prefix, chat_template

Control, unknown and user-defined tokens become added tokens (matched in raw text before the
model runs, as transformers does for the same vocabularies).
"""
from __future__ import annotations

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPIECE_SPACE = "\u2581"  # "▁": SentencePiece's visible space

# Pre-tokenizer regexes, as written in the families' own tokenizer.json files.
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


class UnsupportedTokenizerError(ValueError):
    """The GGUF's tokenizer kind (tokenizer.ggml.model / .pre) is not one LocalLLM can convert."""


def _split(regex: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


def _byte_level(use_regex: bool) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
            "use_regex": use_regex}


# pre value -> (normalizer, pre_tokenizer, ignore_merges, add_bos default). Each entry is checked
# against llama.cpp's ggml-vocab-<name>.gguf .inp/.out fixtures (tests/unit/test_tokenizer_gguf.py).
_GPT2_STYLE = (None, _byte_level(True), False, False)
# Every numeric character on its own, then GPT-2's regex. Real tokenizer.json files write the
# first step as Digits(individual_digits); @huggingface/tokenizers 0.2.0's Digits misses non-decimal
# numerics such as "½" (\p{No}) where the Rust crate splits them, so a Split on \p{N} is used: the
# same split in both libraries.
_DIGITS_THEN_GPT2 = (None, {"type": "Sequence", "pretokenizers": [
    _split(r"\p{N}"), _byte_level(True)]}, False, False)
_LLAMA3 = (None, {"type": "Sequence", "pretokenizers": [_split(LLAMA3_REGEX), _byte_level(False)]},
           True, True)
_QWEN2 = ({"type": "NFC"}, {"type": "Sequence", "pretokenizers": [
    _split(QWEN2_REGEX), _byte_level(False)]}, False, False)
BPE_PRE = {
    "default": _GPT2_STYLE, "gpt-2": _GPT2_STYLE, "gpt2": _GPT2_STYLE, "mpt": _GPT2_STYLE,
    "llama-bpe": _LLAMA3, "llama3": _LLAMA3,
    "qwen2": _QWEN2, "deepseek-r1-qwen": _QWEN2,
    "smollm": _DIGITS_THEN_GPT2, "starcoder": _DIGITS_THEN_GPT2, "refact": _DIGITS_THEN_GPT2,
}


def _added(i: int, content: str, special: bool) -> dict:
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": special}


def _post_processor(bos: str | None, eos: str | None, ids: dict) -> dict | None:
    """TemplateProcessing that wraps a single sequence in bos/eos (None: nothing to add)."""
    if bos is None and eos is None:
        return None
    single = ([{"SpecialToken": {"id": bos, "type_id": 0}}] if bos else []) + \
             [{"Sequence": {"id": "A", "type_id": 0}}] + \
             ([{"SpecialToken": {"id": eos, "type_id": 0}}] if eos else [])
    pair = single + [{"Sequence": {"id": "B", "type_id": 1}}]
    special = {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in (bos, eos) if t}
    return {"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special}


def spm_merges(pieces: list[str], scores: list[float]) -> list[list[str]]:
    """BPE merges equivalent to a SentencePiece BPE model: every split of a piece into two pieces
    that are both in the vocabulary, ranked by the merged piece's score (higher merges first),
    then by longer left part, then longer right part; remaining ties keep vocabulary order, and
    the splits of one piece are ordered by (left id, right id). This is the order transformers'
    converter gives real tokenizer.json files (checked against Gemma 3's)."""
    index = {p: i for i, p in enumerate(pieces)}
    ranked = []
    for i, piece in enumerate(pieces):
        splits = []
        for k in range(1, len(piece)):
            left, right = index.get(piece[:k]), index.get(piece[k:])
            if left is not None and right is not None:
                splits.append((left, right))
        splits.sort()
        ranked.extend((-scores[i], -len(pieces[l]), -len(pieces[r]), len(ranked), l, r)
                      for l, r in splits)
    ranked.sort()
    return [[pieces[l], pieces[r]] for *_, l, r in ranked]


def _bpe_model(vocab: dict, merges: list, **extra) -> dict:
    return {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False, "vocab": vocab, "merges": merges, **extra}


def tokenizer_json_from_gguf(md: dict) -> dict:
    """The tokenizer.json dict equivalent to a GGUF's tokenizer metadata."""
    model = md.get("tokenizer.ggml.model")
    tokens = md.get("tokenizer.ggml.tokens")
    if not tokens:
        raise UnsupportedTokenizerError("this GGUF has no embedded tokenizer (no "
                                        "tokenizer.ggml.tokens); use a tokenizer.json instead")
    types = md.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    if model == "gpt2":
        return _byte_level_bpe(md, tokens, types)
    if model == "llama":
        return _sentencepiece_bpe(md, tokens, types)
    raise UnsupportedTokenizerError(
        f"GGUF tokenizer model {model!r} is not supported (supported: 'gpt2' byte-level BPE and "
        f"'llama' SentencePiece BPE); use the model's tokenizer.json instead")


def _special_ids(md: dict, tokens: list[str]) -> dict:
    out = {}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                      ("unk", "unknown_token_id"), ("pad", "padding_token_id")):
        i = md.get(f"tokenizer.ggml.{key}")
        if isinstance(i, int) and 0 <= i < len(tokens):
            out[name] = i
    return out


def _finish(md: dict, tokens: list[str], added: list[dict], normalizer, pre, model: dict,
            decoder: dict, add_bos_default: bool) -> dict:
    ids = _special_ids(md, tokens)
    add_bos = md.get("tokenizer.ggml.add_bos_token", add_bos_default)
    add_eos = md.get("tokenizer.ggml.add_eos_token", False)
    bos = tokens[ids["bos"]] if add_bos and "bos" in ids else None
    eos = tokens[ids["eos"]] if add_eos and "eos" in ids else None
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": normalizer, "pre_tokenizer": pre,
            "post_processor": _post_processor(bos, eos, {t: model["vocab"][t] for t in (bos, eos) if t}),
            "decoder": decoder, "model": model}


def _byte_level_bpe(md: dict, tokens: list[str], types: list[int]) -> dict:
    pre_name = md.get("tokenizer.ggml.pre", "default")
    if pre_name not in BPE_PRE:
        raise UnsupportedTokenizerError(
            f"GGUF pre-tokenizer {pre_name!r} is not supported (supported: "
            f"{', '.join(sorted(BPE_PRE))}); use the model's tokenizer.json instead")
    normalizer, pre, ignore_merges, add_bos_default = BPE_PRE[pre_name]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [m.split(" ", 1) for m in md.get("tokenizer.ggml.merges", [])]
    added = [_added(i, t, ty != USER_DEFINED) for i, (t, ty) in enumerate(zip(tokens, types))
             if ty in (UNKNOWN, CONTROL, USER_DEFINED)]
    model = _bpe_model(vocab, merges, ignore_merges=ignore_merges)
    decoder = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
               "use_regex": True}
    return _finish(md, tokens, added, normalizer, pre, model, decoder, add_bos_default)


def _sentencepiece_bpe(md: dict, tokens: list[str], types: list[int]) -> dict:
    # llama.cpp's converters store user-defined pieces with real spaces; the tokenizer.json
    # vocabulary spells them with "▁" like every other piece.
    pieces = [t.replace(" ", SPIECE_SPACE) if ty == USER_DEFINED else t
              for t, ty in zip(tokens, types)]
    # SentencePiece scores user-defined and control pieces 0; llama.cpp's converters store -1000.
    # Merge ranks follow the SentencePiece scores (Gemma's whitespace runs merge first).
    scores = [0.0 if ty in (CONTROL, USER_DEFINED) else s for s, ty in
              zip(md.get("tokenizer.ggml.scores") or [0.0] * len(tokens), types)]
    space_prefix = md.get("tokenizer.ggml.add_space_prefix", True)
    ids = _special_ids(md, tokens)
    vocab = {p: i for i, p in enumerate(pieces)}
    added = [_added(i, p, ty != USER_DEFINED) for i, (p, ty) in enumerate(zip(pieces, types))
             if ty in (UNKNOWN, CONTROL, USER_DEFINED)]
    replace = {"type": "Replace", "pattern": {"String": " "}, "content": SPIECE_SPACE}
    normalizer = ({"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": SPIECE_SPACE}, replace]} if space_prefix else replace)
    decoders = [{"type": "Replace", "pattern": {"String": SPIECE_SPACE}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}]
    if space_prefix:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    model = _bpe_model(vocab, spm_merges(pieces, scores), fuse_unk=True, byte_fallback=True,
                       unk_token=pieces[ids["unk"]] if "unk" in ids else None)
    return _finish(md, pieces, added, normalizer, None, model,
                   {"type": "Sequence", "decoders": decoders}, True)


def tokenizer_config_from_gguf(md: dict) -> dict:
    """The tokenizer_config.json fields LocalLLM reads, taken from GGUF metadata."""
    tokens = md.get("tokenizer.ggml.tokens") or []
    ids = _special_ids(md, tokens)
    model = md.get("tokenizer.ggml.model")
    add_bos_default = model == "llama" or (
        model == "gpt2" and BPE_PRE.get(md.get("tokenizer.ggml.pre", "default"), _GPT2_STYLE)[3])
    cfg = {"add_bos_token": bool(md.get("tokenizer.ggml.add_bos_token", add_bos_default)),
           "add_eos_token": bool(md.get("tokenizer.ggml.add_eos_token", False))}
    for name in ("bos", "eos", "unk", "pad"):
        if name in ids:
            cfg[f"{name}_token"] = tokens[ids[name]]
    extra = [tokens[i] for key in ("eot_token_id", "eom_token_id")
             if isinstance(i := md.get(f"tokenizer.ggml.{key}"), int) and 0 <= i < len(tokens)]
    if extra:
        cfg["end_of_turn_tokens"] = extra
    if md.get("tokenizer.chat_template"):
        cfg["chat_template"] = md["tokenizer.chat_template"]
    return cfg
