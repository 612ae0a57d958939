"""Native downloads (app/runtime/fetch.py) against a real local HTTP server with Range support
and fault injection (tests/fault_server.py): resume after a dropped connection, a cancelled
download resumed by a later call, a server that ignores Range, retries after a 500, integrity
errors that remove the file, and the bearer token sent to the model's URL."""
from __future__ import annotations

import hashlib
import os
import threading

import pytest

from app.runtime.fetch import DownloadCancelled, fetch, part_paths
from app.store.errors import DownloadError, IntegrityError
from tests.fault_server import Fault, FaultServer

SIZE = 3 << 20


def auth(server: FaultServer) -> list:
    """The Authorization header of every request the server saw, in order."""
    return [h.authorization for h in server.log]


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    path = tmp_path_factory.mktemp("served") / "model.gguf"
    data = os.urandom(SIZE)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def srv(blob):
    s = FaultServer({"model.gguf": blob[0]}).start()
    yield s
    s.stop()


def test_plain_download_with_progress(srv, blob, tmp_path):
    seen = []
    dest = tmp_path / "m" / "model.gguf"
    out = fetch(srv.url("model.gguf"), dest, size=SIZE, sha256=blob[1],
                progress=lambda d, t: seen.append((d, t)))
    assert out == dest and dest.read_bytes() == blob[0].read_bytes()
    assert not any(p.exists() for p in part_paths(dest))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (SIZE, SIZE)
    assert len(srv.gets()) == 1 and auth(srv) == [None]


def test_resume_after_dropped_connection(srv, blob, tmp_path):
    cut = 1 << 20
    srv.inject("model.gguf", Fault("drop", after=cut))
    dest = tmp_path / "model.gguf"
    fetch(srv.url("model.gguf"), dest, size=SIZE, sha256=blob[1])
    gets = srv.gets()
    assert [g.range for g in gets] == ["bytes=0-", f"bytes={cut}-"]
    assert [g.status for g in gets] == [206, 206] and gets[1].sent == SIZE - cut
    assert dest.read_bytes() == blob[0].read_bytes()


def test_cancelled_download_resumes_in_a_later_call(srv, blob, tmp_path):
    dest = tmp_path / "model.gguf"
    stop = threading.Event()

    def progress(done, total):
        if done >= 1 << 20:
            stop.set()

    with pytest.raises(DownloadCancelled):
        fetch(srv.url("model.gguf"), dest, size=SIZE, progress=progress, stop=stop)
    part, meta = part_paths(dest)
    have = part.stat().st_size
    assert 1 << 20 <= have < SIZE and meta.exists() and not dest.exists()
    fetch(srv.url("model.gguf"), dest, size=SIZE, sha256=blob[1])
    assert srv.gets()[-1].range == f"bytes={have}-"
    assert dest.read_bytes() == blob[0].read_bytes()


def test_server_ignoring_range_restarts_cleanly(srv, blob, tmp_path):
    srv.inject("model.gguf", Fault("drop", after=1 << 20), Fault("ignore_range"))
    dest = tmp_path / "model.gguf"
    fetch(srv.url("model.gguf"), dest, size=SIZE, sha256=blob[1])
    assert [g.status for g in srv.gets()] == [206, 200]
    assert dest.read_bytes() == blob[0].read_bytes()      # no bytes doubled


def test_retry_after_server_errors(srv, blob, tmp_path):
    srv.inject("model.gguf", Fault("status", status=503), Fault("status", status=500))
    dest = tmp_path / "model.gguf"
    fetch(srv.url("model.gguf"), dest, sha256=blob[1])
    assert [g.status for g in srv.gets()] == [503, 500, 206]


def test_not_found_fails_at_once(srv, tmp_path):
    with pytest.raises(DownloadError, match="404") as e:
        fetch(srv.url("missing.gguf"), tmp_path / "x.gguf")
    assert e.value.status == 404 and len(srv.gets()) == 1


def test_sha256_mismatch_removes_the_file(srv, tmp_path):
    dest = tmp_path / "model.gguf"
    with pytest.raises(IntegrityError, match="sha256") as e:
        fetch(srv.url("model.gguf"), dest, size=SIZE, sha256="0" * 64)
    assert "removed" in str(e.value)
    assert not dest.exists() and not any(p.exists() for p in part_paths(dest))


def test_size_mismatch_fails_before_writing(srv, tmp_path):
    dest = tmp_path / "model.gguf"
    with pytest.raises(DownloadError, match="expected"):
        fetch(srv.url("model.gguf"), dest, size=SIZE + 1)
    assert not dest.exists()


def test_bearer_token_is_sent(srv, blob, tmp_path):
    fetch(srv.url("model.gguf"), tmp_path / "model.gguf", token="hf_secret123")
    assert auth(srv) == ["Bearer hf_secret123"]
