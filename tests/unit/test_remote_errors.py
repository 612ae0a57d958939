"""Error mapping of the remote provider against real HTTP failures (tests/remote_servers.py's
ErrorServer on 127.0.0.1, and a closed port), and the API key's privacy: never in a log line
(every logger at DEBUG, aiohttp's included), a message, a repr or a formatted traceback."""
from __future__ import annotations

import logging
import time
import traceback

import pytest

from app.runtime.remote import RemoteLLM
from app.runtime.remote_config import RemoteConfig
from app.runtime.remote_errors import (RemoteError, RemoteRateLimitedError, RemoteRequestError,
                                       RemoteServerError, RemoteTimeoutError,
                                       RemoteUnauthorizedError, RemoteUnreachableError)
from tests.remote_servers import ErrorServer, closed_port

KEY = "sk-test-7f3a9c1e5b2d4068-SECRET"
MSGS = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def errsrv():
    srv = ErrorServer().start()
    yield srv
    srv.stop()


def remote(base_url: str, **kw) -> RemoteLLM:
    return RemoteLLM(RemoteConfig(enabled=True, base_url=base_url, api_key=KEY,
                                  model="m").checked(), **kw)


def failure(run, r: RemoteLLM, stream: bool = False) -> RemoteError:
    async def go():
        if stream:
            async for _ in await r.chat(MSGS, stream=True, max_tokens=4):
                pass
        else:
            await r.chat(MSGS, max_tokens=4)
    with pytest.raises(RemoteError) as info:
        run(go())
    return info.value


def assert_private(e: BaseException) -> None:
    text = "".join(traceback.format_exception(e))
    assert KEY not in str(e) and KEY not in repr(e) and KEY not in text
    # no library exception (which may hold the request and its headers) chained to ours
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)


@pytest.mark.parametrize("case, status", [("unauthorized", 401), ("forbidden", 403)])
@pytest.mark.parametrize("stream", [False, True])
def test_401_403_are_unauthorized_and_the_echoed_key_is_redacted(run, errsrv, case, status,
                                                                 stream):
    e = failure(run, remote(errsrv.base_url(case)), stream)
    assert type(e) is RemoteUnauthorizedError
    assert f"HTTP {status}" in str(e) and "API key" in str(e) and "settings" in str(e)
    assert e.host == f"http://127.0.0.1:{errsrv.port}"
    if case == "unauthorized":
        assert "Incorrect API key provided: ***" in str(e)   # the server's echo, redacted
    assert_private(e)
    assert errsrv.hits[-1] == (case, f"Bearer {KEY}")          # the key went in the header


def test_429_is_rate_limited_with_retry_after_seconds_and_dates(run, errsrv):
    e = failure(run, remote(errsrv.base_url("ratelimit")))
    assert type(e) is RemoteRateLimitedError and e.retry_after == 7.0
    assert "HTTP 429" in str(e) and "wait 7 s" in str(e)
    e = failure(run, remote(errsrv.base_url("ratelimit_date")), stream=True)
    assert type(e) is RemoteRateLimitedError and 25 <= e.retry_after <= 31
    assert_private(e)


def test_500_is_server_error_with_the_servers_reason(run, errsrv):
    e = failure(run, remote(errsrv.base_url("server")))
    assert type(e) is RemoteServerError and "HTTP 500" in str(e) and "model crashed" in str(e)
    assert_private(e)


def test_other_4xx_and_redirects_are_request_errors_and_redirects_not_followed(run, errsrv):
    e = failure(run, remote(errsrv.base_url("notfound")))
    assert type(e) is RemoteRequestError and "HTTP 404" in str(e) and "not found" in str(e)
    n = len(errsrv.hits)
    e = failure(run, remote(errsrv.base_url("redirect")))
    assert type(e) is RemoteRequestError and "redirects" in str(e)
    assert len(errsrv.hits) == n + 1       # the redirect target (another host) was not asked


def test_connection_refused_is_unreachable(run):
    base = f"http://127.0.0.1:{closed_port()}/v1"
    for stream in (False, True):
        e = failure(run, remote(base), stream)
        assert type(e) is RemoteUnreachableError
        assert "could not connect" in str(e) and "Connection refused" in str(e)
        assert "base URL" in str(e)
        assert_private(e)


def test_unknown_host_is_unreachable(run):
    e = failure(run, remote("http://no-such-host.invalid/v1"))
    assert type(e) is RemoteUnreachableError and "no-such-host.invalid" in str(e)


def test_stalled_server_times_out_waiting_for_headers_and_mid_stream(run, errsrv):
    errsrv.left.clear()
    t0 = time.perf_counter()
    e = failure(run, remote(errsrv.base_url("stall_headers"), idle_timeout_s=0.5))
    assert type(e) is RemoteTimeoutError and "within 0.5 s" in str(e)
    assert 0.4 < time.perf_counter() - t0 < 5
    assert errsrv.left.wait(10)            # the client closed its connection on timeout
    errsrv.left.clear()
    items = []

    async def go():
        async for item in await remote(errsrv.base_url("stall_body"),
                                       idle_timeout_s=0.5).chat(MSGS, stream=True):
            items.append(item)
    with pytest.raises(RemoteTimeoutError, match="sent nothing for 0.5 s"):
        run(go())
    assert items == [{"delta": "Hello", "provider": "remote"}]
    assert errsrv.left.wait(10)


def test_malformed_cut_and_non_api_replies_are_server_errors(run, errsrv):
    for case, stream, words in (("malformed", True, "not JSON"),
                                ("truncated", True, "ended the stream"),
                                ("notjson", False, "not JSON")):
        e = failure(run, remote(errsrv.base_url(case)), stream)
        assert type(e) is RemoteServerError and words in str(e), (case, str(e))


def test_the_key_is_in_no_log_line_repr_or_message(run, errsrv, caplog):
    caplog.set_level(logging.DEBUG)             # the root logger: every library's records
    for name in ("aiohttp", "aiohttp.client", "asyncio", "app"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    errors = []
    for case in ("unauthorized", "ratelimit", "server", "notfound", "stall_headers",
                 "truncated", "malformed"):
        errors.append(failure(run, remote(errsrv.base_url(case), idle_timeout_s=0.5),
                              stream=case != "server"))
    errors.append(failure(run, remote(f"http://127.0.0.1:{closed_port()}/v1")))
    r = remote(errsrv.base_url("ratelimit"))
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    assert any("remote chat request to" in rec.getMessage() for rec in caplog.records)
    for rec in caplog.records:
        assert KEY not in rec.getMessage() and KEY not in str(rec.args)
    assert KEY not in caplog.text
    for e in errors:
        assert_private(e)
    assert KEY not in repr(r) and KEY not in repr(r.config) and KEY not in str(r.config)
    assert KEY not in str(r.config.public()) and r.config.public()["has_api_key"] is True
    assert "***" in repr(r.config)
