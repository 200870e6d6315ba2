"""What a probe's request can fail with, short of an HTTP answer, and the short text a
report shows for it ("DNS lookup failed", "timeout after 5.0s", "TLS error: ...")."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from http.client import BadStatusLine, HTTPException, RemoteDisconnected

import urllib3.exceptions

from rewriter.probe.transport import ProbeDenied, UnsupportedProxy


class TokenTooLarge(Exception):
    """A token realm kept sending past registry.MAX_TOKEN_BYTES."""


class TooManyRedirects(Exception):
    pass


class BadURL(ValueError):
    """A URL the probe cannot send a request to (a port that is not a number)."""


# What a request can fail with, short of an HTTP answer.
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, TokenTooLarge, TooManyRedirects, BadURL)


def describe_error(exc: BaseException, timeout: float) -> str:
    """Short text for a request that got no HTTP answer."""
    if isinstance(exc, TokenTooLarge):
        return str(exc)
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ProbeDenied):
            return str(cause)
    errors = urllib3.exceptions
    # Before the timeouts: urllib3 2 makes a failed connection a kind of connect timeout.
    if isinstance(exc, (errors.NewConnectionError, errors.ProtocolError)):
        for kind, text in _CONNECTION_FAILURES:
            if any(isinstance(cause, kind) for cause in causes):
                return text
        return "connection failed"
    if isinstance(exc, errors.TimeoutError):
        return f"timeout after {timeout:.1f}s"
    if isinstance(exc, errors.SSLError):
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                why = getattr(cause, "verify_message", None)
                return "TLS error: certificate verify failed" + (f" ({why})" if why else "")
        for cause in causes:
            if isinstance(cause, ssl.SSLError) and cause.reason:
                return f"TLS error: {cause.reason}"
        return "TLS error"
    if isinstance(exc, UnsupportedProxy):
        return "proxy error (SOCKS proxies are not supported)"
    if isinstance(exc, errors.ProxyError):
        return "proxy error"
    if isinstance(exc, TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, (BadURL, errors.LocationValueError)):
        return "invalid URL"
    return f"request failed ({type(exc).__name__})"


_CONNECTION_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (urllib3.exceptions.NameResolutionError, "DNS lookup failed"),
    (socket.gaierror, "DNS lookup failed"),
    (ConnectionRefusedError, "connection refused"),
    # Before ConnectionResetError, of which it is a subclass: a clean close, not a reset.
    (RemoteDisconnected, "connection closed by the registry"),
    (ConnectionResetError, "connection reset"),
    (BadStatusLine, "not an HTTP answer"),
    (HTTPException, "malformed HTTP answer"),
    (urllib3.exceptions.ProtocolError, "connection closed by the registry"),
    (OSError, "connection failed"),
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (urllib3 -> socket, ssl, http.client)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        todo += [item for item in linked if isinstance(item, BaseException)]
