"""`python -m app chat|complete --remote-url URL --remote-model NAME` (key from
$LOCALLLM_REMOTE_API_KEY) against llama.cpp's server: a local load that fails falls back to the
server with a note on stderr; mode remote skips the local engine; the key appears nowhere in
the output; without the fallback the local error exits 1 and nothing is sent."""
from __future__ import annotations

import os
import subprocess
import sys

from app.runtime.remote import RemoteLLM
from app.runtime.remote_config import RemoteConfig
from tests.remote_servers import LLAMA_KEY

KEY = LLAMA_KEY          # the session server's key (tests/conftest.py `llama`)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUESTION = "What is the capital of France?"


def cli(*args, key=KEY):
    env = {**os.environ, "LOCALLLM_REMOTE_API_KEY": key}
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=180)


def test_failed_local_load_falls_back_to_the_remote_server(llama, run, tmp_path):
    missing = str(tmp_path / "missing.gguf")
    p = cli("chat", "--model", missing, "--max-tokens", "10", "--remote-url", llama.base_url,
            "--remote-model", "smollm2", QUESTION)
    assert p.returncode == 0, p.stderr
    expect = run(RemoteLLM(RemoteConfig(enabled=True, base_url=llama.base_url, api_key=KEY,
                                        model="smollm2")).chat(
        [{"role": "user", "content": QUESTION}], temperature=0.0, max_tokens=10))["text"]
    assert p.stdout == expect + "\n"
    assert "note: this request goes to http://127.0.0.1:" in p.stderr
    assert "ModelSourceError" in p.stderr and "using the remote model smollm2" in p.stderr
    assert KEY not in p.stdout + p.stderr


def test_remote_mode_and_raw_completion(llama, tmp_path):
    n = len(llama.requests())
    p = cli("complete", "--model", str(tmp_path / "unused.gguf"), "--max-tokens", "5",
            "--remote-url", llama.base_url, "--remote-model", "smollm2", "--remote-mode",
            "remote", "The capital of France is")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() and "remote mode" in p.stderr
    assert llama.requests()[n:] == ["POST /v1/completions 200"]


def test_without_fallback_the_local_error_exits_1_and_nothing_is_sent(llama, tmp_path):
    n = len(llama.requests())
    p = cli("chat", "--model", str(tmp_path / "missing.gguf"), QUESTION)
    assert p.returncode == 1 and "ModelSourceError" in p.stderr
    p = cli("chat", "--model", str(tmp_path / "missing.gguf"), "--remote-url", llama.base_url,
            QUESTION)                                            # no --remote-model
    assert p.returncode == 1 and "RemoteConfigError" in p.stderr and "model" in p.stderr
    p = cli("chat", "--model", str(tmp_path / "missing.gguf"), "--remote-url", llama.base_url,
            "--remote-model", "smollm2", QUESTION, key="wrong")
    assert p.returncode == 1 and "RemoteUnauthorizedError" in p.stderr and "wrong" not in \
        p.stderr
    assert llama.requests()[n:] == ["POST /v1/chat/completions 401"]
