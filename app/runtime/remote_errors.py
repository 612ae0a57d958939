"""Named errors of the remote provider (remote.py). Each message says what to do and names the
server by its host only: never the API key, never a full URL, never request headers.

    RemoteError                    base class (a RuntimeError, like the runtime's other errors)
      RemoteConfigError            settings missing or invalid (set_remote_config says which)
      RemoteUnauthorizedError      HTTP 401 / 403: the key was refused
      RemoteRateLimitedError       HTTP 429; .retry_after: seconds (None when not given)
      RemoteUnreachableError       connection refused, DNS failure, CORS refusal in the browser
      RemoteTimeoutError           nothing arrived within the idle timeout
      RemoteServerError            HTTP 5xx, or a body / stream that is not the OpenAI shape
      RemoteRequestError           any other HTTP 4xx (unknown model, prompt too long, ...)

The transports (remote_http.py, remote_browser.py) raise these at their edge, `from None`: a
library's own exception can carry the request (and its Authorization header) in its attributes.
"""
from __future__ import annotations


class RemoteError(RuntimeError):
    """A remote request failed; `host` names the server (scheme://host:port)."""

    def __init__(self, message: str, host: str | None = None):
        super().__init__(message)
        self.host = host


class RemoteConfigError(RemoteError, ValueError):
    """The remote settings are missing or invalid."""


class RemoteUnauthorizedError(RemoteError):
    """The server refused the API key (HTTP 401 or 403)."""


class RemoteRateLimitedError(RemoteError):
    """HTTP 429. `retry_after`: seconds to wait, from the Retry-After header, or None."""

    def __init__(self, message: str, host: str | None = None, retry_after: float | None = None):
        super().__init__(message, host)
        self.retry_after = retry_after


class RemoteUnreachableError(RemoteError):
    """No connection: refused, unknown host, network down, or (browser) a CORS refusal."""


class RemoteTimeoutError(RemoteError):
    """The server sent nothing (no headers, or no stream data) within the idle timeout."""


class RemoteServerError(RemoteError):
    """HTTP 5xx, or a reply that is not an OpenAI-shaped completion / event stream."""


class RemoteRequestError(RemoteError):
    """Any other HTTP 4xx: the server understood and refused the request (its reason is in the
    message, e.g. an unknown model name or a prompt longer than its context)."""


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced: server-provided text is quoted in
    messages, and a server could echo the key back."""
    return text.replace(secret, "***") if secret else text


def http_error(status: int, host: str, detail: str, retry_after: float | None = None
               ) -> RemoteError:
    """The named error for an HTTP error status; `detail`: the server's own reason (already
    redacted, shortened)."""
    said = f" ({detail})" if detail else ""
    if status in (401, 403):
        return RemoteUnauthorizedError(
            f"the remote server {host} refused the API key (HTTP {status}){said}. Check the key "
            "in the remote provider settings (setRemoteConfig / set_remote_config).", host)
    if status == 429:
        wait = (f"wait {retry_after:g} s before retrying" if retry_after is not None
                else "wait a moment before retrying")
        return RemoteRateLimitedError(
            f"the remote server {host} is rate limiting requests (HTTP 429){said}; {wait}, or "
            "check your plan's limits.", host, retry_after)
    if status >= 500:
        return RemoteServerError(
            f"the remote server {host} failed (HTTP {status}){said}. Try again later, or check "
            "the server's logs.", host)
    return RemoteRequestError(
        f"the remote server {host} refused the request (HTTP {status}){said}. Check the model "
        "name and the request's options in the remote provider settings.", host)
