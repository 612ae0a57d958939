"""`build.py serve`: a real aiohttp server on 127.0.0.1 with Range support and the right MIME types."""
from __future__ import annotations

import http.client
import os
from urllib.parse import urlparse

import pytest


def request(server, path, method="GET", headers=None):
    u = urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


@pytest.fixture(scope="module")
def model_file(server):
    data = os.urandom(3 * 2**20 + 12345)  # fresh random bytes, not a multiple of anything
    path = server.dist / "models" / "random-test.gguf"
    path.write_bytes(data)
    yield "/models/random-test.gguf", data
    path.unlink()


@pytest.mark.parametrize("path,ctype", [
    ("/vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
    ("/vendor/pyodide/pyodide.mjs", "text/javascript"),
    ("/static/manifest.webmanifest", "application/manifest+json"),
    ("/vendor/pyscript/core.js", "text/javascript"),
    ("/", "text/html"),
    ("/pyscript.json", "application/json"),
])
def test_mime_types(server, path, ctype):
    resp, body = request(server, path)
    assert resp.status == 200 and body
    assert resp.getheader("Content-Type").split(";")[0] == ctype


def test_full_get_and_head(server, model_file):
    path, data = model_file
    resp, body = request(server, path)
    assert resp.status == 200 and body == data
    assert resp.getheader("Accept-Ranges") == "bytes"
    resp, body = request(server, path, "HEAD")
    assert resp.status == 200 and body == b"" and int(resp.getheader("Content-Length")) == len(data)


@pytest.mark.parametrize("rng", ["bytes=0-0", "bytes=1000-2000000", "bytes=3145728-", "bytes=-777"])
def test_range_requests(server, model_file, rng):
    path, data = model_file
    resp, body = request(server, path, headers={"Range": rng})
    assert resp.status == 206
    start, _, end = rng[6:].partition("-")
    if start == "":
        expected, first = data[-int(end):], len(data) - int(end)
    else:
        expected = data[int(start): (int(end) + 1 if end else None)]
        first = int(start)
    assert body == expected
    assert resp.getheader("Content-Range") == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"


def test_unsatisfiable_range(server, model_file):
    path, data = model_file
    resp, _ = request(server, path, headers={"Range": f"bytes={len(data) + 10}-"})
    assert resp.status == 416


def test_not_found_and_no_escape_from_dist(server):
    assert request(server, "/no/such/file.js")[0].status == 404
    resp, body = request(server, "/../build.py")
    assert resp.status in (403, 404) and b"def build" not in body
    resp, body = request(server, "/%2e%2e/build.py")
    assert resp.status in (403, 404) and b"def build" not in body
