"""The remote provider's HTTP seam: one POST whose body is read as chunks, and can be aborted.

    resp = await transport.post(url, headers, body)      # after the response headers arrived
    resp.status, resp.header("retry-after")
    async for chunk in resp.chunks(): ...                 # bytes, as they arrive
    resp.abort()                                          # drop the connection (interrupt)
    await resp.close()                                    # always, when done

Two implementations: AiohttpTransport here (CPython) and FetchTransport in remote_browser.py
(Pyodide: fetch + AbortController + a body reader). Failures to connect become
RemoteUnreachableError at this edge, raised `from None`: a library's exception may hold the
request, whose headers hold the key. Timeouts are the caller's (remote.py wraps each wait).
"""
from __future__ import annotations

from typing import AsyncIterator

from .remote_errors import RemoteUnreachableError


class HTTPResponse:
    """Abstract: a response whose headers have arrived."""

    status: int = 0

    def header(self, name: str) -> str | None:
        raise NotImplementedError

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the connection now (synchronous, idempotent): the server sees the client
        disconnect; a pending read ends (with an error or the end of the stream)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class HTTPTransport:
    """Abstract: `post` returns once the response headers arrived."""

    async def post(self, url: str, headers: dict, body: bytes, *, host: str,
                   connect_timeout: float) -> HTTPResponse:
        raise NotImplementedError


class _AiohttpResponse(HTTPResponse):
    def __init__(self, session, resp):
        self._session, self._resp = session, resp
        self.status = resp.status

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    async def chunks(self):
        import aiohttp
        try:
            while True:
                data = await self._resp.content.readany()
                if not data:
                    return
                yield data
        except (aiohttp.ClientError, ConnectionError) as e:
            # a dropped connection mid-body: the caller tells an abort from a failure
            raise ConnectionError(f"connection lost ({type(e).__name__})") from None

    def abort(self) -> None:
        self._resp.close()            # closes the socket: the server sees the disconnect

    async def close(self) -> None:
        self._resp.release()
        await self._session.close()


class AiohttpTransport(HTTPTransport):
    """CPython: one aiohttp session per request (requests are long and few; no pooling to
    keep state between them). No proxy from the environment is used (trust_env=False): the
    settings' base URL is the only place the key goes."""

    async def post(self, url, headers, body, *, host, connect_timeout):
        import aiohttp
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        session = aiohttp.ClientSession(timeout=timeout, trust_env=False)
        try:
            resp = await session.post(url, data=body, headers=headers, allow_redirects=False)
        except aiohttp.ClientConnectorError as e:
            await session.close()
            raise RemoteUnreachableError(
                f"could not connect to the remote server {host} ({_reason(e)}). Check the base "
                "URL in the remote provider settings and that the server is running.",
                host) from None
        except (aiohttp.ClientError, OSError) as e:
            await session.close()
            raise RemoteUnreachableError(
                f"the connection to the remote server {host} failed ({type(e).__name__}). Check "
                "the base URL and your network.", host) from None
        except BaseException:
            await session.close()
            raise
        return _AiohttpResponse(session, resp)


def _reason(e) -> str:
    """The OS's reason (e.g. "Connection refused"), without the request."""
    import os
    os_error = getattr(e, "os_error", None)
    errno = getattr(os_error, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)        # "Connection refused", not asyncio's wording
    return (getattr(os_error, "strerror", None) or str(os_error or "")
            or type(e).__name__)
