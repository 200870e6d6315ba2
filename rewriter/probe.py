"""Anonymous registry probe: is this image pullable without credentials?

For each distinct (registry, repository, reference) the OCI distribution protocol is
followed the way a container runtime does it, minus every credential (the cache has been
read before, see rewriter/answers.py):

1. `GET /v2/` once per registry per render, shared by all threads, to read the
   `WWW-Authenticate` challenge;
2. for a Bearer challenge, an anonymous token from the realm with `service` and
   `scope=repository:<repo>:pull` (one request per scope per render); a 401/403 from the
   realm itself is the answer (GHCR, Artifact Registry say "private" that way);
3. `HEAD /v2/<repo>/manifests/<reference>` with all four manifest media types, with the
   anonymous token if there is one; a Basic challenge needs no token step: the anonymous
   HEAD then answers 401 by itself (ECR, htpasswd).

Images are probed `concurrency` at a time, in the order `policy.schedule` gives, over
kept-alive connections that all verify TLS with one context per render
(rewriter/tls.py).

Only the final, classification-relevant answer is kept for the cache, as a `store.Entry`
handed to `keep` (its status and the challenge's gist, nothing else): never a ping, never
a token response, never the unauthenticated 401 that precedes a token.

Never sent: the license, docker logins, ~/.netrc, or any header from the environment:
the session's `trust_env` is turned off, and the only `Authorization` ever sent is the
anonymous token the registry's own realm handed out. Proxies from the standard
environment variables are honoured deliberately (they tunnel, they do not answer).

Where the probe may go (server-side request forgery: image names, challenges and
redirects come from untrusted commits and registries): every host it is about to
contact, the image's registry, a token realm, each redirect hop, goes through
`host_allowed` first: never a link-local address or a cloud metadata endpoint, never a
host matching `--probe-deny`, and with `--probe-allow` only hosts matching it; a redirect
or realm may not take an HTTPS conversation to plain HTTP. Redirects are followed here,
hop by hop, not by requests, so that each hop is checked and no body is ever read. The
name check cannot see where DNS sends a name, so the transport checks the address it
actually connected to as well, before a byte is sent (`_GuardedAdapter`).

The policy (rewriter/policy.py, and `describe_error` here) is pure; `probe_all` does
the I/O.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.client import BadStatusLine, HTTPException, RemoteDisconnected
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urljoin, urlsplit
from urllib.request import getproxies

import requests
import urllib3
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri, should_bypass_proxies

from rewriter.challenge import Challenge, parse_challenges
from rewriter.policy import (
    ACCEPT,
    TOKEN_REALM_HEADER,
    TOKEN_REALM_VALUE,
    ProbeSettings,
    api_host,
    challenge_summary,
    classify,
    deadline_at,
    describe,
    forbidden_address,
    host_allowed,
    manifest_path,
    redirect_refusal,
    registry_refusal,
    schedule,
    token_scope,
)
from rewriter.store import Entry
from rewriter.tls import tls_context
from rewriter.verdict import ProbeKey, ProbeResult, Verdict

if TYPE_CHECKING:
    from rewriter.reference import ImageRef

__all__ = [
    "ACCEPT",
    "ProbeDenied",
    "ProbeKey",
    "ProbeResult",
    "ProbeSettings",
    "Verdict",
    "api_host",
    "classify",
    "describe",
    "describe_error",
    "forbidden_address",
    "host_allowed",
    "new_session",
    "probe_all",
    "schedule",
]

USER_AGENT = "rewriter-probe/0.1"
MAX_TOKEN_BYTES = 1 << 20  # an anonymous token is a few KiB; refuse to buffer more
SMALL_BODY = 4096  # bytes: read to keep the connection, rather than closing it
MAX_REDIRECTS = 5  # registries redirect a manifest at most once or twice (to a CDN)
POOL_SIZE = 32  # connections kept per host: at least the default probe concurrency


class ProbeDenied(OSError):
    """The transport refused to talk to the address a name resolved to."""


def describe_error(exc: BaseException, timeout: float) -> str:
    """Short text for a request that got no HTTP answer."""
    if isinstance(exc, TokenTooLarge):
        return str(exc)
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ProbeDenied):
            return str(cause)
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timeout after {timeout:.1f}s"
    if isinstance(exc, requests.exceptions.SSLError):
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                why = getattr(cause, "verify_message", None)
                return "TLS error: certificate verify failed" + (f" ({why})" if why else "")
        for cause in causes:
            if isinstance(cause, ssl.SSLError) and cause.reason:
                return f"TLS error: {cause.reason}"
        return "TLS error"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "proxy error"
    if isinstance(exc, requests.exceptions.ConnectionError):
        for kind, text in _CONNECTION_FAILURES:
            if any(isinstance(cause, kind) for cause in causes):
                return text
        return "connection failed"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)):
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
    """The exception and everything it wraps (requests -> urllib3 -> socket)."""
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


# -- I/O -------------------------------------------------------------------------------


def probe_all(
    refs: Iterable[ImageRef],
    settings: ProbeSettings,
    session: requests.Session,
    keep: Callable[[Entry], None] | None = None,
    tls: ssl.SSLContext | None = None,
) -> dict[ProbeKey, ProbeResult]:
    """Ask the registries about each distinct key once, in parallel; never raises for
    network trouble. `keep` receives, from the worker threads, the answers worth storing.
    Every connection verifies TLS with `tls`, by default `tls_context(settings.ca_bundle)`.

    Returns by the deadline (`policy.deadline_at`, plus scheduling slack) whatever
    happens: keys without an answer by then are UNKNOWN "deadline exceeded". Stuck
    requests are left behind in daemon threads, which neither block this return nor the
    interpreter's exit.
    """
    keys = schedule(ref.probe_key for ref in refs)
    if not keys:
        return {}
    _harden(session, tls or tls_context(settings.ca_bundle))
    run = _Run(settings, session, deadline_at(settings, time.monotonic()), keep)
    return run.all(keys)


def new_session() -> requests.Session:
    """A session for `probe_all`, keeping POOL_SIZE connections per host."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _harden(session: requests.Session, tls: ssl.SSLContext) -> None:
    """Strip everything ambient from the session: the probe sends no credential at all.
    Its transport checks every peer address and verifies TLS with `tls`."""
    session.trust_env = False  # no ~/.netrc, no REQUESTS_CA_BUNDLE, no implicit proxies
    session.auth = None
    session.headers.pop("Authorization", None)
    session.proxies = {}  # per request instead, see _Proxies
    session.cookies.clear()
    # Nor any cookie a registry or realm sets: nothing goes back but the token.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    guarded: _GuardedAdapter | None = None
    for prefix in ("https://", "http://"):
        adapter = session.get_adapter(prefix)
        if guarded is None:  # one for both schemes, as requests mounts them
            guarded = _GuardedAdapter(
                tls,
                pool_connections=getattr(adapter, "_pool_connections", 10),
                pool_maxsize=getattr(adapter, "_pool_maxsize", 10),
            )
        adapter.close()  # (a guarded one from an earlier run may trust other roots)
        session.mount(prefix, guarded)


class _GuardedConnectionMixin:
    """Refuses a connection whose peer is a forbidden address, before a byte is sent
    (for HTTPS, before the ClientHello). Checking the peer after connecting, rather
    than resolving first, leaves no gap for a name that resolves differently twice."""

    host: str

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        try:
            peer = str(sock.getpeername()[0])
        except OSError:
            return sock  # not connected after all: the request fails by itself
        forbidden = forbidden_address(peer)
        if forbidden:
            sock.close()
            raise ProbeDenied(f"probe denied: {self.host} is a {forbidden} ({peer})")
        return sock


class _GuardedHTTPConnection(_GuardedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


_GUARDED_POOLS = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter over connections that check their peer address (also the
    connection to a proxy: a proxy on a metadata address is no better), all verifying
    TLS with one context, `tls`."""

    def __init__(self, tls: ssl.SSLContext, **kwargs: Any) -> None:
        self.tls = tls  # before HTTPAdapter.__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, ssl_context=self.tls, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _GUARDED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, ssl_context=self.tls, **proxy_kwargs)
        manager.pool_classes_by_scheme = _GUARDED_POOLS
        return manager

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        # requests names a CA file on every new connection, and urllib3 would load it
        # into the context again: ~50 ms of CPU per connection, the whole cost of a cold
        # render's probes. The context holds the roots already (`tls_context`).
        conn.ca_certs = conn.ca_cert_dir = None


class TokenTooLarge(requests.exceptions.RequestException):
    """A token realm kept sending past MAX_TOKEN_BYTES."""


class _Proxies:
    """HTTP(S)_PROXY / NO_PROXY, read on purpose (trust_env is off). A proxy is a tunnel
    to the image's own registry, not a mirror, so it cannot make a private image look
    public; credentials in a proxy URL go to the proxy only.

    Read once per render: requests reads the whole environment for every request."""

    def __init__(self) -> None:
        self.proxies = getproxies()

    def for_url(self, url: str) -> dict[str, str]:
        if not self.proxies or should_bypass_proxies(url, no_proxy=None):
            return {}
        return self.proxies


class _DeadlineExceeded(Exception):
    pass


class _Refused(Exception):
    """A host the probe may not contact; str() is the reason, the probe's detail."""


@dataclass(frozen=True)
class _Endpoint:
    """A registry's API as the ping found it."""

    base: str  # scheme://host[:port]
    bearer: Challenge | None  # the Bearer challenge of /v2/, if it sent one


@dataclass(frozen=True)
class _Denied:
    """The token realm refused an anonymous token: private, and worth remembering."""

    status: int


K = TypeVar("K")
V = TypeVar("V")


@dataclass
class _Slot(Generic[V]):
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: V | None = None
    done: bool = False


class _Once(Generic[K, V]):
    """Compute a value once per key, however many threads ask at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[K, _Slot[V]] = {}

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            if not slot.done:
                slot.value = compute()
                slot.done = True
            return slot.value  # type: ignore[return-value]  # set just above


class _Run:
    """One render's probes: the shared pings and tokens, what is kept, the clock."""

    def __init__(
        self,
        settings: ProbeSettings,
        session: requests.Session,
        deadline_at: float,
        keep: Callable[[Entry], None] | None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.deadline_at = deadline_at
        self.keep = keep
        self.insecure = frozenset(host.lower() for host in settings.insecure_registries)
        self.proxies = _Proxies()
        self.pings: _Once[str, _Endpoint | ProbeResult] = _Once()
        self.tokens: _Once[tuple[str, str, str], str | _Denied | ProbeResult] = _Once()
        self.cancelled = False

    # -- scheduling --------------------------------------------------------------------

    def all(self, keys: list[ProbeKey]) -> dict[ProbeKey, ProbeResult]:
        answers: dict[ProbeKey, ProbeResult] = {}
        ask: list[ProbeKey] = []
        for key in keys:  # here, before any thread: refused keys need none
            refused = registry_refusal(key[0], self.settings)
            if refused is None:
                ask.append(key)
            else:
                answers[key] = ProbeResult(Verdict.UNKNOWN, refused)
        if ask:
            self.ask(ask, answers)
        late = ProbeResult(Verdict.UNKNOWN, "deadline exceeded")
        return {key: answers.get(key, late) for key in keys}

    def ask(self, keys: list[ProbeKey], answers: dict[ProbeKey, ProbeResult]) -> None:
        """Ask the registries about `keys` in parallel, filling in `answers` until the
        deadline."""
        todo: queue.SimpleQueue[ProbeKey] = queue.SimpleQueue()
        for key in keys:
            todo.put(key)
        finished: queue.SimpleQueue[ProbeKey] = queue.SimpleQueue()

        def worker() -> None:
            while not self.cancelled:
                try:
                    key = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    answers[key] = self.probe(key)
                finally:
                    finished.put(key)

        # Daemon threads rather than a ThreadPoolExecutor: the executor's workers are
        # joined at interpreter exit, so one request stuck on a dripping server would hold
        # the whole render past its deadline.
        workers = [
            threading.Thread(target=worker, name=f"probe-{number}", daemon=True)
            for number in range(min(max(self.settings.concurrency, 1), len(keys)))
        ]
        for thread in workers:
            thread.start()

        pending = set(keys)
        while pending:
            left = self.deadline_at - time.monotonic()
            if left <= 0:
                break
            try:
                pending.discard(finished.get(timeout=left))
            except queue.Empty:
                break
        self.cancelled = True

    # -- one key -----------------------------------------------------------------------

    def probe(self, key: ProbeKey) -> ProbeResult:
        """The registry's answer for one key; never raises."""
        try:
            return self._from_registry(key)
        except _DeadlineExceeded:
            return ProbeResult(Verdict.UNKNOWN, "deadline exceeded")
        except _Refused as exc:
            return ProbeResult(Verdict.UNKNOWN, str(exc))
        except requests.RequestException as exc:
            return ProbeResult(Verdict.UNKNOWN, describe_error(exc, self.settings.timeout))
        except Exception as exc:  # a probe must never take the render down
            return ProbeResult(Verdict.UNKNOWN, f"probe failed: {type(exc).__name__}: {exc}")

    def _from_registry(self, key: ProbeKey) -> ProbeResult:
        registry, repository, reference = key
        endpoint = self.pings.get(registry, lambda: self._ping(registry))
        if isinstance(endpoint, ProbeResult):
            return endpoint
        url = endpoint.base + manifest_path(repository, reference)
        token: str | None = None
        if endpoint.bearer is not None:
            got = self._token(endpoint.bearer, repository, url)
            if isinstance(got, ProbeResult):
                return got
            token = got
        response = self._head(url, token)
        if response.status_code == 401 and token is None:
            # /v2/ let us in but the repository asks for a token (per-repository auth):
            # follow this challenge once, as a runtime would.
            bearer = _bearer(parse_challenges(response.headers.get("WWW-Authenticate")))
            if bearer is not None:
                got = self._token(bearer, repository, url)
                if isinstance(got, ProbeResult):
                    return got
                response = self._head(url, got)
        verdict = classify(response.status_code)
        result = ProbeResult(
            verdict, describe(response.status_code, response.headers.get("WWW-Authenticate"))
        )
        if verdict is not Verdict.UNKNOWN:  # unknown answers are never cached
            self._store(url, response)
        return result

    # -- protocol steps ----------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        """One request and its redirects, each hop checked by `redirect_refusal` and
        bounded by the per-request timeout and what is left of the deadline. The body is
        never read here (stream=True): a caller that wants it reads it capped."""
        headers = dict(headers)
        for hop in range(MAX_REDIRECTS + 1):
            response = self._send_once(method, url, headers, params if hop == 0 else None)
            location = response.headers.get("Location") if response.is_redirect else None
            if location is None:
                return response
            response.close()  # a redirect's body, however large, is never read
            target = requote_uri(urljoin(response.url, location))
            refused = redirect_refusal(
                target, self.settings, urlsplit(response.url).scheme.lower(), "redirect to"
            )
            if refused is not None:
                raise _Refused(refused)
            if _origin(target) != _origin(response.url):
                headers.pop("Authorization", None)  # a token is for its registry only
            url = target
        raise requests.exceptions.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")

    def _send_once(
        self, method: str, url: str, headers: dict[str, str], params: dict[str, str] | None
    ) -> requests.Response:
        left = self.deadline_at - time.monotonic()
        if left <= 0 or self.cancelled:
            raise _DeadlineExceeded
        timeout = min(self.settings.timeout, left)
        try:
            urlsplit(url).port  # noqa: B018  # what the proxy lookup would raise on
        except ValueError as exc:
            raise requests.exceptions.InvalidURL(str(exc)) from None
        try:
            prepared = requests.PreparedRequest()
            prepared.prepare(method=method, url=url, headers=headers, params=params)
            # The session's transport directly: what Session.prepare_request and
            # Session.send add is the session's settings (none are kept, see `_harden`),
            # cookies (refused) and hooks, for about a millisecond of CPU per request in
            # runtime Protocol checks, paid by the workers one at a time under the GIL.
            return self.session.get_adapter(url).send(
                prepared,
                stream=True,
                timeout=timeout,
                verify=True,  # with the adapter's context: see tls_context
                cert=None,
                proxies=self.proxies.for_url(url),
            )
        except requests.exceptions.Timeout:
            if timeout < self.settings.timeout:
                raise _DeadlineExceeded from None
            raise

    def _ping(self, registry: str) -> _Endpoint | ProbeResult:
        """`GET /v2/`: which scheme works and which challenge the registry sends."""
        host = api_host(registry)
        # Plain HTTP only for registries the user named; even those get HTTPS first, as
        # Docker does for its insecure registries.
        schemes = ("https", "http") if registry in self.insecure else ("https",)
        failure = ProbeResult(Verdict.UNKNOWN, "no scheme to try")
        for scheme in schemes:
            base = f"{scheme}://{host}"
            try:
                response = self._send("GET", base + "/v2/", _headers())
            except requests.RequestException as exc:
                failure = ProbeResult(Verdict.UNKNOWN, describe_error(exc, self.settings.timeout))
                continue
            with contextlib.closing(response):
                self._drain(response)
                status = response.status_code
                if status == 429 or status >= 500:
                    return ProbeResult(Verdict.UNKNOWN, f"{describe(status)} on /v2/")
                challenges = (
                    parse_challenges(response.headers.get("WWW-Authenticate"))
                    if status == 401
                    else []
                )
                # Any other answer (200, or a 401 Basic, or an odd 404) leaves the
                # manifest HEAD to decide, so that the cached answer is the registry's.
                return _Endpoint(base, _bearer(challenges))
        return failure

    def _token(self, bearer: Challenge, repository: str, url: str) -> str | ProbeResult:
        """The anonymous token for this repository (shared per scope), or the answer when
        the realm gave none: a refusal is PRIVATE and remembered for `url`."""
        realm = bearer.get("realm") or ""
        service = bearer.get("service") or ""
        scope = token_scope(repository)
        # Checked here, per registry, not inside the shared fetch: whether a plain-HTTP
        # realm is a downgrade depends on how this registry was reached.
        refused = redirect_refusal(realm, self.settings, urlsplit(url).scheme, "token realm")
        if refused is not None:
            raise _Refused(refused)
        got = self.tokens.get(
            (realm, service, scope), lambda: self._fetch_token(realm, service, scope)
        )
        if isinstance(got, _Denied):
            self._store_realm_answer(url, got.status)
            return ProbeResult(Verdict.PRIVATE, describe(got.status, realm=True))
        return got

    def _fetch_token(self, realm: str, service: str, scope: str) -> str | _Denied | ProbeResult:
        """An anonymous token: no Authorization header goes to the realm, ever."""
        params = {"scope": scope}
        if service:
            params["service"] = service
        response = self._send("GET", realm, _headers(), params)
        with contextlib.closing(response):
            status = response.status_code
            if status in (401, 403):
                return _Denied(status)
            if not 200 <= status < 300:
                return ProbeResult(Verdict.UNKNOWN, f"token realm answered {describe(status)}")
            body = self._read_capped(response)
        try:
            data = json.loads(body)
        except ValueError:
            return ProbeResult(Verdict.UNKNOWN, "token realm answered no JSON")
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return ProbeResult(Verdict.UNKNOWN, "token realm answered without a token")
        return token

    def _read_capped(self, response: requests.Response) -> bytes:
        """The body, within the deadline and MAX_TOKEN_BYTES (a dripping or endless realm
        must not hold a worker forever)."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(8192):
            size += len(chunk)
            if size > MAX_TOKEN_BYTES:
                raise TokenTooLarge(f"token realm answered more than {MAX_TOKEN_BYTES >> 20} MiB")
            if time.monotonic() > self.deadline_at:
                raise _DeadlineExceeded
            chunks.append(chunk)
        return b"".join(chunks)

    def _head(self, url: str, token: str | None) -> requests.Response:
        headers = _headers(ACCEPT)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self._send("HEAD", url, headers)
        with contextlib.closing(response):
            self._drain(response)
        return response

    def _drain(self, response: requests.Response) -> None:
        """Read what is left of a small body nobody needs: the connection then goes back
        to the pool for the next request, where closing it would cost the next one a new
        TLS handshake. A HEAD has no body; a /v2/ answer is a few bytes (`{}`). A body
        of unannounced or larger size is left unread: the connection is closed instead."""
        length = response.headers.get("Content-Length", "")
        if response.request.method == "HEAD":
            response.content  # noqa: B018  # b"": the connection is free again
        elif length.isdigit() and int(length) <= SMALL_BODY:
            self._read_capped(response)

    # -- what is kept for the cache -----------------------------------------------------

    def _store(self, url: str, response: requests.Response) -> None:
        """Store the registry's final manifest answer: its status and the gist of the
        challenge that explains it, nothing else (no token, no Authorization, no other
        header)."""
        challenge = challenge_summary(response.headers.get("WWW-Authenticate"))
        headers = {"WWW-Authenticate": challenge} if challenge else {}
        self._keep(url, response.status_code, response.reason or "", headers)

    def _store_realm_answer(self, url: str, status: int) -> None:
        """The realm's refusal, remembered as the answer for the manifest URL (the realm's
        own response is a token response: never stored)."""
        refused = "token realm refused an anonymous token"
        self._keep(url, status, refused, {TOKEN_REALM_HEADER: TOKEN_REALM_VALUE})

    def _keep(self, url: str, status: int, reason: str, headers: dict[str, str]) -> None:
        if self.keep is not None:
            self.keep(Entry(url, status, reason, headers))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _headers(accept: str = "*/*") -> dict[str, str]:
    return {"Accept": accept, "User-Agent": USER_AGENT}


def _bearer(challenges: list[Challenge]) -> Challenge | None:
    """The first Bearer challenge with a realm: an anonymous token may get us in."""
    for challenge in challenges:
        if challenge.scheme == "bearer" and challenge.get("realm"):
            return challenge
    return None
