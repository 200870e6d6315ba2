"""The probe's HTTP transport: urllib3's connection pools, and nothing ambient.

urllib3 reads no ~/.netrc, keeps no cookies and consults no environment variable; the
probe adds exactly what it means to (rewriter/probe/registry.py): its own headers, the
anonymous token, and the proxy variables, read once per render:

- `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case; lower case wins,
  as curl and requests have it). A proxy is a tunnel to the image's own registry, not a
  mirror, so it cannot make a private image look public; credentials in a proxy URL go
  to the proxy as `Proxy-Authorization` and nowhere else. SOCKS proxies are refused.
- Every connection, to a registry, a realm or a proxy, checks the address it reached
  before a byte is sent (for HTTPS, before the ClientHello): never a cloud metadata
  endpoint or a link-local address, whatever DNS said (`ProbeDenied`); a direct one
  also never an address `--probe-deny` refuses or `--probe-allow` leaves out
  (`policy.peer_refusal`).
- A URL urllib3 would read as another host than urllib.parse does (a backslash before
  an `@`) is refused: the policy checks the host the transport connects to.
- Every TLS connection verifies with the render's one context
  (rewriter/probe/tls.py).

Requests are sent as given: no retries, no redirects followed (the probe checks each
hop itself), bodies neither preloaded nor decoded.
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import ClassVar
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies

import urllib3
import urllib3.connection
from urllib3.util import make_headers, parse_url

from rewriter.options import CONCURRENCY
from rewriter.probe.policy import ProbeSettings, forbidden_address, no_proxy_matches, peer_refusal

POOL_SIZE = CONCURRENCY  # connections kept per host: at least the default probe concurrency

Response = urllib3.BaseHTTPResponse


class ProbeDenied(OSError):
    """The transport refused to talk to the address a name resolved to."""


class UnsupportedProxy(urllib3.exceptions.HTTPError):
    """A proxy the transport does not speak (SOCKS)."""


# Why a connection to (host, port) that reached `peer` must not be used, or None.
Refusal = Callable[[str, int | None, str], "str | None"]


def _forbidden_only(host: str, port: int | None, peer: str) -> str | None:
    forbidden = forbidden_address(peer)
    return f"probe denied: {host} is a {forbidden} ({peer})" if forbidden else None


class _GuardedConnectionMixin:
    """Refuses a connection whose peer is a forbidden address, before a byte is sent.
    Checking the peer after connecting, rather than resolving first, leaves no gap for a
    name that resolves differently twice. `refusal` says which peers are refused."""

    host: str
    port: int
    refusal: ClassVar[Refusal] = _forbidden_only

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        try:
            peer = str(sock.getpeername()[0])
        except OSError:
            return sock  # not connected after all: the request fails by itself
        refused = type(self).refusal(self.host, self.port, peer)
        if refused:
            sock.close()
            raise ProbeDenied(refused)
        return sock


class _GuardedHTTPConnection(_GuardedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


def _guarded_pools(refusal: Refusal) -> dict[str, type[urllib3.HTTPConnectionPool]]:
    """Pool classes whose connections refuse the peers `refusal` refuses."""

    class HTTPConnection(_GuardedHTTPConnection):
        pass

    class HTTPSConnection(_GuardedHTTPSConnection):
        pass

    HTTPConnection.refusal = HTTPSConnection.refusal = refusal

    class HTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = HTTPConnection

    class HTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = HTTPSConnection

    return {"http": HTTPPool, "https": HTTPSPool}


_FORBIDDEN_ONLY_POOLS = _guarded_pools(_forbidden_only)


class Transport:
    """Sends the probe's requests: one pool manager for direct connections and one per
    proxy, every pool guarded, `pool_size` connections kept per host."""

    def __init__(
        self,
        tls: ssl.SSLContext,
        pool_size: int = POOL_SIZE,
        environ: Mapping[str, str] | None = None,
        settings: ProbeSettings | None = None,
    ) -> None:
        self._tls = tls
        # Direct connections: the peer is the host asked for, so --probe-deny and
        # --probe-allow apply to the address it reached too. Through a proxy the peer is
        # the proxy, which the operator chose: only forbidden addresses are refused.
        if settings is None:
            self._direct_pools = _FORBIDDEN_ONLY_POOLS
        else:
            self._direct_pools = _guarded_pools(functools.partial(_peer_refusal, settings))
        self._pool_size = pool_size
        proxies = getproxies() if environ is None else _proxies_from(environ)
        self._no_proxy = proxies.pop("no", "")
        self._proxies = proxies
        self._direct = self._manager(None)
        self._through: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()  # guards `_through`

    def send(self, method: str, url: str, headers: Mapping[str, str], timeout: float) -> Response:
        """One request, one answer (its body unread): urllib3's exceptions otherwise.
        A URL that urllib3 and the policy (urllib.parse) would read as different hosts is
        refused (ProbeDenied): the host checked must be the host connected to."""
        _same_host(url)
        return self._manager_for(url).urlopen(
            method,
            url,
            headers=dict(headers),
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )

    def _manager_for(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if not proxy or no_proxy_matches(parts.hostname or "", parts.port, self._no_proxy):
            return self._direct
        with self._lock:
            manager = self._through.get(proxy)
            if manager is None:
                manager = self._through[proxy] = self._manager(proxy)
        return manager

    def _manager(self, proxy: str | None) -> urllib3.PoolManager:
        manager: urllib3.PoolManager
        if proxy is None:
            manager = urllib3.PoolManager(
                num_pools=64, maxsize=self._pool_size, ssl_context=self._tls
            )
        else:
            if "://" not in proxy:
                proxy = f"http://{proxy}"
            parts = urlsplit(proxy)
            if parts.scheme.lower().startswith("socks"):
                raise UnsupportedProxy(f"SOCKS proxy {parts.hostname}: not supported")
            auth = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            manager = urllib3.ProxyManager(
                proxy,
                num_pools=64,
                proxy_headers=make_headers(proxy_basic_auth=auth) if parts.username else None,
                proxy_ssl_context=self._tls,
                maxsize=self._pool_size,
                ssl_context=self._tls,
            )
        manager.pool_classes_by_scheme = (
            self._direct_pools if proxy is None else _FORBIDDEN_ONLY_POOLS
        )
        return manager


def _peer_refusal(settings: ProbeSettings, host: str, port: int | None, peer: str) -> str | None:
    return peer_refusal(host, port, peer, settings)


def _same_host(url: str) -> None:
    """Raise ProbeDenied unless urllib3 connects where urllib.parse says `url` points."""
    try:
        theirs = parse_url(url)
        ours = urlsplit(url)
        same = (theirs.host or "").strip("[]").lower() == (ours.hostname or "") and (
            theirs.port == ours.port
        )
    except (ValueError, urllib3.exceptions.LocationParseError):
        return  # unreadable: urllib3 says so itself
    if not same or "\\" in url:
        raise ProbeDenied(f"probe denied: ambiguous URL {ours.netloc.rpartition('@')[2]!r}")


def _proxies_from(environ: Mapping[str, str]) -> dict[str, str]:
    """What urllib.request.getproxies() reads, from `environ` (lower case wins)."""
    found: dict[str, str] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy"):
            scheme = name[: -len("_proxy")].lower()
            if name.islower() or scheme not in found:
                found[scheme] = value
    return found
