"""The registry client: is this image pullable without credentials?

For each distinct (registry, repository, reference) the OCI distribution protocol is
followed the way a container runtime does it, minus every credential (the cache has been
read before, see rewriter/probe/__init__.py):

1. `GET /v2/` once per registry per render, shared by all threads, to read the
   `WWW-Authenticate` challenge;
2. for a Bearer challenge, an anonymous token from the realm with `service` and
   `scope=repository:<repo>:pull` (one request per scope per render); a 401/403 from the
   realm itself is the answer (GHCR, Artifact Registry say "private" that way);
3. `HEAD /v2/<repo>/manifests/<reference>` with all four manifest media types, with the
   anonymous token if there is one; a Basic challenge needs no token step: the anonymous
   HEAD then answers 401 by itself (ECR, htpasswd).

Images are probed `concurrency` at a time (rewriter/probe/pool.py: the threads and the
deadline live there, so that this module reads as the protocol), in the order
`policy.schedule` gives, over kept-alive connections that all verify TLS with one context
per render (rewriter/probe/tls.py).

Only the final, classification-relevant answer is kept for the cache, as a `format.Entry`
handed to `keep` (its status and the challenge's gist, nothing else): never a ping, never
a token response, never the unauthenticated 401 that precedes a token.

Never sent: the license, docker logins, ~/.netrc, cookies, or any header from the
environment: the transport is urllib3's pools, which know none of them, and the only
`Authorization` ever sent is the anonymous token the registry's own realm handed out.
Proxies from the standard environment variables are honoured deliberately (they tunnel,
they do not answer).

Where the probe may go (server-side request forgery: image names, challenges and
redirects come from untrusted commits and registries): every host it is about to
contact, the image's registry, a token realm, each redirect hop, goes through
`policy.host_allowed` first: never a link-local address or a cloud metadata endpoint, never a
host matching `--probe-deny`, and with `--probe-allow` only hosts matching it; a redirect
or realm may not take an HTTPS conversation to plain HTTP. Redirects are followed here,
hop by hop, so that each hop is checked and no body is ever read. The name check cannot
see where DNS sends a name, so the transport checks the address it actually connected to
as well, before a byte is sent (rewriter/probe/transport.py).

The policy (rewriter/probe/policy.py, and `failures.describe_error`) is pure;
`probe_all` does the I/O.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3.exceptions

from rewriter.probe.cache.format import Entry
from rewriter.probe.challenge import Challenge, parse_challenges
from rewriter.probe.failures import (
    TRANSPORT_ERRORS,
    BadURL,
    TokenTooLarge,
    TooManyRedirects,
    describe_error,
)
from rewriter.probe.policy import (
    ACCEPT,
    TOKEN_REALM_HEADER,
    TOKEN_REALM_VALUE,
    ProbeSettings,
    api_host,
    challenge_summary,
    classify,
    deadline_at,
    describe_status,
    manifest_path,
    redirect_refusal,
    registry_refusal,
    schedule,
    token_scope,
)
from rewriter.probe.pool import Deadline, Once, run_until
from rewriter.probe.tls import tls_context
from rewriter.probe.transport import Response, Transport
from rewriter.probe.verdict import ProbeKey, ProbeResult, Verdict

if TYPE_CHECKING:
    from rewriter.reference import ImageRef

USER_AGENT = "rewriter-probe/0.1"
MAX_TOKEN_BYTES = 1 << 20  # an anonymous token is a few KiB; refuse to buffer more
SMALL_BODY = 4096  # bytes: read to keep the connection, rather than closing it
MAX_REDIRECTS = 5  # registries redirect a manifest at most once or twice (to a CDN)

# Told (done, total) by `probe_all`: the edge's progress line, never printed from here.
Progress = Callable[[int, int], None]


def probe_all(
    refs: Iterable[ImageRef],
    settings: ProbeSettings,
    transport: Transport | None = None,
    keep: Callable[[Entry], None] | None = None,
    progress: Progress | None = None,
) -> dict[ProbeKey, ProbeResult]:
    """Ask the registries about each distinct key once, in parallel; never raises for
    network trouble. `keep` receives, from the worker threads, the answers worth storing;
    `progress(done, total)`, from the calling thread, how far the probes are, as each
    answer comes and every `pool.TICK` seconds while none does.
    Requests go through `transport`, by default one verifying TLS with
    `tls_context(settings.ca_bundle)`.

    Returns by the deadline (`policy.deadline_at`, plus scheduling slack) whatever
    happens: keys without an answer by then are UNKNOWN "deadline exceeded". Stuck
    requests are left behind in daemon threads, which neither block this return nor the
    interpreter's exit.
    """
    keys = schedule(ref.probe_key for ref in refs)
    if not keys:
        return {}
    if transport is None:
        transport = Transport(tls_context(settings.ca_bundle), settings=settings)
    deadline = Deadline(deadline_at(settings, time.monotonic()))
    answers: dict[ProbeKey, ProbeResult] = {}
    ask: list[ProbeKey] = []
    for key in keys:  # here, before any thread: refused keys need none
        refused = registry_refusal(key[0], settings)
        if refused is None:
            ask.append(key)
        else:
            answers[key] = ProbeResult(Verdict.UNKNOWN, refused)
    if ask:
        client = RegistryClient(settings, transport, deadline, keep)
        answered = len(answers)  # the refused ones count as done
        told = None if progress is None else lambda done: progress(answered + done, len(keys))
        answers.update(run_until(ask, client.probe, settings.concurrency, deadline, told))
    late = ProbeResult(Verdict.UNKNOWN, "deadline exceeded")
    return {key: answers.get(key, late) for key in keys}


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


class RegistryClient:
    """One render's conversations with the registries: the pings and tokens shared by all
    its images, what is kept for the cache, within the render's deadline. `probe` is
    called from the pool's workers, several at a time."""

    def __init__(
        self,
        settings: ProbeSettings,
        transport: Transport,
        deadline: Deadline,
        keep: Callable[[Entry], None] | None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.deadline = deadline
        self.keep = keep
        self.insecure = frozenset(host.lower() for host in settings.insecure_registries)
        self.pings: Once[str, _Endpoint | ProbeResult] = Once()
        self.tokens: Once[tuple[str, str, str], str | _Denied | ProbeResult] = Once()

    # -- one key -----------------------------------------------------------------------

    def probe(self, key: ProbeKey) -> ProbeResult:
        """The registry's answer for one key; never raises."""
        try:
            return self._from_registry(key)
        except _DeadlineExceeded:
            return ProbeResult(Verdict.UNKNOWN, "deadline exceeded")
        except _Refused as exc:
            return ProbeResult(Verdict.UNKNOWN, str(exc))
        except TRANSPORT_ERRORS as exc:
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
        if response.status == 401 and token is None:
            # /v2/ let us in but the repository asks for a token (per-repository auth):
            # follow this challenge once, as a runtime would.
            bearer = _bearer(parse_challenges(response.headers.get("WWW-Authenticate")))
            if bearer is not None:
                got = self._token(bearer, repository, url)
                if isinstance(got, ProbeResult):
                    return got
                response = self._head(url, got)
        verdict = classify(response.status)
        result = ProbeResult(
            verdict, describe_status(response.status, response.headers.get("WWW-Authenticate"))
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
    ) -> Response:
        """One request and its redirects, each hop checked by `redirect_refusal` and
        bounded by the per-request timeout and what is left of the deadline. The body is
        never read here: a caller that wants it reads it capped, and `_release`s it."""
        headers = dict(headers)
        if params:
            url = _with_query(url, params)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_once(method, url, headers)
            location = response.get_redirect_location()
            if not location:
                return response
            _release(response)  # a redirect's body, however large, is never read
            target = urljoin(url, location)
            refused = redirect_refusal(
                target, self.settings, urlsplit(url).scheme.lower(), "redirect to"
            )
            if refused is not None:
                raise _Refused(refused)
            if _origin(target) != _origin(url):
                headers.pop("Authorization", None)  # a token is for its registry only
            url = target
        raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")

    def _send_once(self, method: str, url: str, headers: dict[str, str]) -> Response:
        left = self.deadline.left()
        if left <= 0 or self.deadline.cancelled:
            raise _DeadlineExceeded
        timeout = min(self.settings.timeout, left)
        try:
            urlsplit(url).port  # noqa: B018  # what urllib3 would fail on less clearly
        except ValueError as exc:
            raise BadURL(str(exc)) from None
        try:
            return self.transport.send(method, url, headers, timeout)
        except urllib3.exceptions.TimeoutError as exc:
            if isinstance(exc, urllib3.exceptions.NewConnectionError):
                raise  # a refused or failed connection, not a timeout
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
            except TRANSPORT_ERRORS as exc:
                failure = ProbeResult(Verdict.UNKNOWN, describe_error(exc, self.settings.timeout))
                continue
            with _released(response):
                self._drain(response, "GET")
                status = response.status
                if status == 429 or status >= 500:
                    return ProbeResult(Verdict.UNKNOWN, f"{describe_status(status)} on /v2/")
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
            return ProbeResult(Verdict.PRIVATE, describe_status(got.status, realm=True))
        return got

    def _fetch_token(self, realm: str, service: str, scope: str) -> str | _Denied | ProbeResult:
        """An anonymous token: no Authorization header goes to the realm, ever."""
        params = {"scope": scope}
        if service:
            params["service"] = service
        response = self._send("GET", realm, _headers(), params)
        with _released(response):
            status = response.status
            if status in (401, 403):
                return _Denied(status)
            if not 200 <= status < 300:
                answered = f"token realm answered {describe_status(status)}"
                return ProbeResult(Verdict.UNKNOWN, answered)
            body = self._read_capped(response)
        try:
            data = json.loads(body)
        except ValueError:
            return ProbeResult(Verdict.UNKNOWN, "token realm answered no JSON")
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return ProbeResult(Verdict.UNKNOWN, "token realm answered without a token")
        return token

    def _read_capped(self, response: Response) -> bytes:
        """The body, within the deadline and MAX_TOKEN_BYTES (a dripping or endless realm
        must not hold a worker forever)."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.stream(8192):
            size += len(chunk)
            if size > MAX_TOKEN_BYTES:
                raise TokenTooLarge(f"token realm answered more than {MAX_TOKEN_BYTES >> 20} MiB")
            if self.deadline.passed():
                raise _DeadlineExceeded
            chunks.append(chunk)
        return b"".join(chunks)

    def _head(self, url: str, token: str | None) -> Response:
        headers = _headers(ACCEPT)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self._send("HEAD", url, headers)
        with _released(response):
            self._drain(response, "HEAD")
        return response

    def _drain(self, response: Response, method: str) -> None:
        """Read what is left of a small body nobody needs: the connection then goes back
        to the pool for the next request, where closing it would cost the next one a new
        TLS handshake. A HEAD has no body; a /v2/ answer is a few bytes (`{}`). A body
        of unannounced or larger size is left unread: the connection is closed instead."""
        length = response.headers.get("Content-Length", "")
        if method == "HEAD":
            response.read()  # b"": the connection is free again
        elif length.isdigit() and int(length) <= SMALL_BODY:
            self._read_capped(response)

    # -- what is kept for the cache -----------------------------------------------------

    def _store(self, url: str, response: Response) -> None:
        """Store the registry's final manifest answer: its status and the gist of the
        challenge that explains it, nothing else (no token, no Authorization, no other
        header)."""
        challenge = challenge_summary(response.headers.get("WWW-Authenticate"))
        headers = {"WWW-Authenticate": challenge} if challenge else {}
        self._keep(url, response.status, response.reason or "", headers)

    def _store_realm_answer(self, url: str, status: int) -> None:
        """The realm's refusal, remembered as the answer for the manifest URL (the realm's
        own response is a token response: never stored)."""
        refused = "token realm refused an anonymous token"
        self._keep(url, status, refused, {TOKEN_REALM_HEADER: TOKEN_REALM_VALUE})

    def _keep(self, url: str, status: int, reason: str, headers: dict[str, str]) -> None:
        if self.keep is not None:
            self.keep(Entry(url, status, reason, headers))


def _with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` added to its query (the realm's own parameters kept). Text
    only: an unreadable URL fails when it is sent, as "invalid URL"."""
    base, hash_mark, fragment = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}{hash_mark}{fragment}"


def _release(response: Response) -> None:
    """Give the response's connection back to its pool: as it is when its body was read
    to the end, closed otherwise (it may still carry bytes nobody will read)."""
    if not response.closed:
        response.close()
    response.release_conn()


@contextlib.contextmanager
def _released(response: Response) -> Iterator[Response]:
    try:
        yield response
    finally:
        _release(response)


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
