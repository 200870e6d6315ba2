"""The registry probe against real registries on loopback (tests/support/registries.py), a stub
for the answers a real registry cannot be made to give, and its pure policy."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable
from http.client import RemoteDisconnected
from pathlib import Path

import pytest
import urllib3.exceptions
from support import ROOT
from support.helpers import probe_cached, shop_deployment
from support.registries import Registries, Registry, Route, StubRegistry, free_port, stub_registry

from rewriter.errors import RewriterError
from rewriter.probe.cache.format import Entry
from rewriter.probe.cache.write import open_backend, store_answers
from rewriter.probe.failures import BadURL, TooManyRedirects, describe_error
from rewriter.probe.policy import ProbeSettings
from rewriter.probe.registry import probe_all
from rewriter.probe.transport import UnsupportedProxy
from rewriter.probe.verdict import ProbeKey, ProbeResult, Verdict
from rewriter.reference import ImageRef

PUBLIC, PRIVATE, MISSING, UNKNOWN = (
    Verdict.PUBLIC,
    Verdict.PRIVATE,
    Verdict.MISSING,
    Verdict.UNKNOWN,
)


pytestmark = pytest.mark.usefixtures("isolated")


def refs(*texts: str) -> list[ImageRef]:
    return [ImageRef.parse(text) for text in texts]


def key(text: str) -> ProbeKey:
    ref = ImageRef.parse(text)
    return (ref.registry, ref.repository, ref.reference)


def summary(results: dict[ProbeKey, ProbeResult]) -> dict[ProbeKey, tuple[Verdict, str]]:
    return {k: (r.verdict, r.detail) for k, r in results.items()}


def settings_for(env: Registries, **changes: object) -> ProbeSettings:
    values: dict[str, object] = {
        "ca_bundle": env.ca_bundle,
        "insecure_registries": env.insecure,
        "timeout": 3.0,
        "deadline": 15.0,
    }
    values.update(changes)
    return ProbeSettings(**values)  # type: ignore[arg-type]


def settled(count: Callable[[], int]) -> int:
    """A request count once the servers' logs have caught up (they write after answering)."""
    previous = count()
    while True:
        time.sleep(0.15)
        current = count()
        if current == previous:
            return int(current)
        previous = current


def log_lines(registry: Registry, needle: str) -> int:
    return sum(needle in line for line in registry.access_log.read_text().splitlines())


def expected_verdicts(env: Registries) -> dict[str, tuple[Verdict, str]]:
    return {
        env.anonymous.image("library/app", "1.0"): (PUBLIC, "HTTP 200"),
        env.anonymous.image("team/multi", "multi"): (PUBLIC, "HTTP 200"),  # an OCI index
        f"{env.anonymous.domain}/library/app@{env.digests['1.0']}": (PUBLIC, "HTTP 200"),
        env.token.image("public/app", "1.0"): (PUBLIC, "HTTP 200"),
        env.basic.image("team/secret", "1.0"): (PRIVATE, "401 Basic challenge"),
        env.token.image("private/app", "1.0"): (
            PRIVATE,
            "401 Bearer challenge (insufficient_scope)",
        ),
        env.token.image("denied/app", "1.0"): (PRIVATE, "403 from token realm"),
        env.anonymous.image("no/such-repo", "1.0"): (MISSING, "HTTP 404"),
        env.anonymous.image("library/app", "no-such-tag"): (MISSING, "HTTP 404"),
        f"{env.unused_host}/some/app:1.0": (UNKNOWN, "connection refused"),
    }


# -- real registries ---------------------------------------------------------------------


def test_verdicts_from_real_registries(registries: Registries, tmp_path: Path) -> None:
    expected = expected_verdicts(registries)
    warnings: list[str] = []
    cache = str(tmp_path / "probes.sqlite")

    results = probe_cached(refs(*expected), settings_for(registries), cache, 3600, warnings.append)

    assert summary(results) == {key(text): answer for text, answer in expected.items()}
    assert not any(result.cached for result in results.values())
    assert warnings == []


def test_second_render_sends_no_request(registries: Registries, tmp_path: Path) -> None:
    expected = expected_verdicts(registries)
    answerable = [text for text, (verdict, _) in expected.items() if verdict is not UNKNOWN]
    cache = str(tmp_path / "probes.sqlite")
    before = settled(registries.requests)

    first = probe_cached(refs(*answerable), settings_for(registries), cache, 3600, print)
    after_first = settled(registries.requests)
    second = probe_cached(refs(*answerable), settings_for(registries), cache, 3600, print)
    after_second = settled(registries.requests)

    assert after_first > before
    assert after_second == after_first  # not a ping, not a token, not a HEAD
    assert all(result.cached for result in second.values())
    assert summary(second) == summary(first)


def test_unknown_is_never_cached(registries: Registries, tmp_path: Path) -> None:
    cache = str(tmp_path / "probes.sqlite")
    unreachable = f"{registries.unused_host}/some/app:1.0"
    public = registries.anonymous.image("library/app", "1.0")
    settings = settings_for(registries)

    probe_cached(refs(unreachable, public), settings, cache, 3600, print)
    again = probe_cached(refs(unreachable, public), settings, cache, 3600, print)

    assert again[key(unreachable)] == ProbeResult(UNKNOWN, "connection refused", cached=False)
    assert again[key(public)].cached
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone() == (1,)


def test_cache_holds_only_final_manifest_answers(registries: Registries, tmp_path: Path) -> None:
    """No token response, no ping, no Authorization: every row is a manifest HEAD."""
    cache = tmp_path / "probes.sqlite"
    expected = expected_verdicts(registries)
    tokens_before = registries.token_server.log.anonymous_count()
    probe_cached(refs(*expected), settings_for(registries), str(cache), 3600, print)
    assert registries.token_server.log.anonymous_count() > tokens_before  # tokens were used

    with sqlite3.connect(cache) as db:
        rows = [value for (value,) in db.execute("SELECT value FROM responses")]
        redirects = db.execute("SELECT count(*) FROM redirects").fetchone()
        raw = b"".join(line.encode() for line in db.iterdump())
    assert len(rows) == len(expected) - 1  # all but the unreachable one
    assert redirects == (0,)
    for value in rows:
        stored = json.loads(value)  # JSON, not pickle
        assert stored["request"]["method"] == "HEAD"
        assert "/manifests/" in stored["url"]
        assert "authorization" not in {name.lower() for name in stored["request"]["headers"]}
    # JWTs start with base64url('{"'): no token, in any form, anywhere in the file.
    assert b"eyJ" not in raw
    assert b"access_token" not in raw
    assert b"Bearer ey" not in raw


def test_ping_once_per_registry_and_token_once_per_scope(registries: Registries) -> None:
    env = registries
    images = [
        env.anonymous.image("library/app", "1.0"),
        f"{env.anonymous.domain}/library/app@{env.digests['1.0']}",
        env.anonymous.image("team/multi", "multi"),
        env.anonymous.image("no/such-repo", "1.0"),
        env.token.image("public/app", "1.0"),
        f"{env.token.domain}/public/app@{env.digests['1.0']}",  # same scope as above
        env.token.image("public/app", "no-such-tag"),
        env.token.image("private/app", "1.0"),
    ]
    pings = {r.name: log_lines(r, '"GET /v2/ HTTP') for r in (env.anonymous, env.token)}
    tokens = env.token_server.log.anonymous_count()

    results = probe_all(refs(*images), settings_for(env, concurrency=8))
    settled(env.requests)

    assert results[key(images[6])].verdict is MISSING
    assert log_lines(env.anonymous, '"GET /v2/ HTTP') - pings["anonymous"] == 1
    assert log_lines(env.token, '"GET /v2/ HTTP') - pings["token"] == 1
    assert env.token_server.log.anonymous_count() - tokens == 2  # public/app, private/app


def test_plain_http_only_for_insecure_registries(registries: Registries) -> None:
    image = registries.anonymous.image("library/app", "1.0")
    secure_only = settings_for(registries, insecure_registries=frozenset())

    refused = probe_all(refs(image), secure_only)
    allowed = probe_all(refs(image), settings_for(registries))

    assert refused[key(image)] == ProbeResult(UNKNOWN, "connection refused")
    assert allowed[key(image)] == ProbeResult(PUBLIC, "HTTP 200")


def test_tls_is_verified(registries: Registries) -> None:
    image = registries.token.image("public/app", "1.0")
    results = probe_all(refs(image), settings_for(registries, ca_bundle=None))
    assert results[key(image)].verdict is UNKNOWN
    assert results[key(image)].detail.startswith("TLS error: certificate verify failed")


def test_unreadable_ca_bundle_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bundle.pem"
    bad.write_text("not a certificate")
    for bundle in (str(bad), str(tmp_path / "missing.pem")):
        with pytest.raises(RewriterError, match="--ca-bundle"):
            probe_all(refs("example.com/a:1"), ProbeSettings(ca_bundle=bundle))


def test_ambient_credentials_are_never_sent(
    registries: Registries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ~/.netrc with the right password for the htpasswd registry changes nothing."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    netrc = home / ".netrc"
    netrc.write_text(f"machine {registries.basic.host} login pusher password s3cret-pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    image = registries.basic.image("team/secret", "1.0")

    results = probe_all(refs(image), settings_for(registries))

    assert results[key(image)] == ProbeResult(PRIVATE, "401 Basic challenge")


# requests-cache's Redis backend calls SETEX, which redis-py 8 marks deprecated.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_redis_backend(registries: Registries, redis_server: object) -> None:
    import redis

    url = redis_server.url  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushdb()
    expected = expected_verdicts(registries)
    answerable = [text for text, (verdict, _) in expected.items() if verdict is not UNKNOWN]
    warnings: list[str] = []

    first = probe_cached(refs(*answerable), settings_for(registries), url, 3600, warnings.append)
    after_first = settled(registries.requests)
    second = probe_cached(refs(*answerable), settings_for(registries), url, 3600, warnings.append)

    assert settled(registries.requests) == after_first
    assert all(result.cached for result in second.values())
    assert summary(second) == summary(first)
    assert warnings == []
    client = redis.Redis.from_url(url)
    stored = [client.get(name) for name in client.scan_iter("rewriter-probes:*")]
    assert len(stored) == len(answerable)
    for value in stored:
        assert value is not None
        assert json.loads(value)["request"]["method"] == "HEAD"  # JSON, never pickle
        assert b"eyJ" not in value


def test_redis_down_means_uncached_not_failed(registries: Registries) -> None:
    warnings: list[str] = []
    cache = f"redis://127.0.0.1:{free_port()}/0"
    image = registries.anonymous.image("library/app", "1.0")

    results = probe_cached(refs(image), settings_for(registries), cache, 3600, warnings.append)

    assert len(warnings) == 1
    assert "unusable" in warnings[0]
    assert "probing without a cache" in warnings[0]
    assert results[key(image)] == ProbeResult(PUBLIC, "HTTP 200")


def test_offline_answers_from_the_cache_only(registries: Registries, tmp_path: Path) -> None:
    cache = str(tmp_path / "probes.sqlite")
    known = registries.token.image("private/app", "1.0")
    unknown = registries.token.image("public/app", "1.0")
    probe_cached(refs(known), settings_for(registries), cache, 3600, print)
    before = settled(registries.requests)

    results = probe_cached(refs(known, unknown), settings_for(registries), cache, offline=True)
    nothing = probe_cached(refs(known), settings_for(registries), "none", 3600, print, offline=True)

    assert settled(registries.requests) == before
    assert results[key(known)] == ProbeResult(
        PRIVATE, "401 Bearer challenge (insufficient_scope)", cached=True
    )
    assert results[key(unknown)] == ProbeResult(UNKNOWN, "offline, not in cache")
    assert nothing[key(known)] == ProbeResult(UNKNOWN, "offline, not in cache")


def test_expired_answers_are_asked_again(registries: Registries, tmp_path: Path) -> None:
    cache = str(tmp_path / "probes.sqlite")
    image = registries.anonymous.image("library/app", "1.0")
    probe_cached(refs(image), settings_for(registries), cache, 0.5, print)
    time.sleep(1.1)  # requests-cache stores expiry in whole seconds
    again = probe_cached(refs(image), settings_for(registries), cache, 0.5, print)
    assert again[key(image)] == ProbeResult(PUBLIC, "HTTP 200", cached=False)


# -- a stub, for what a real registry will not answer ------------------------------------


def stub_settings(stub: StubRegistry, **changes: object) -> ProbeSettings:
    values: dict[str, object] = {
        "insecure_registries": frozenset({stub.domain}),
        "timeout": 2.0,
        "deadline": 10.0,
    }
    values.update(changes)
    return ProbeSettings(**values)  # type: ignore[arg-type]


MANIFEST = "/v2/team/app/manifests/1.0"


def probe_twice(
    stub: StubRegistry, image: str, tmp_path: Path
) -> tuple[dict[ProbeKey, ProbeResult], int, dict[ProbeKey, ProbeResult]]:
    """Probe `image` with a new cache, then again with the same cache: both answers, and
    how many requests the stub had seen in between."""
    cache = str(tmp_path / "probes.sqlite")
    first = probe_cached(refs(image), stub_settings(stub), cache, 3600, print)
    seen = len(stub.requests())
    second = probe_cached(refs(image), stub_settings(stub), cache, 3600, print)
    return first, seen, second


def bearer_to(stub_realm: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="{stub_realm}",service="stub"'}


def token_body(token: str = "anon-token") -> bytes:
    return json.dumps({"token": token}).encode()


STUB_CASES: list[tuple[str, dict[str, Route], tuple[Verdict, str]]] = [
    ("429", {"/v2/": Route(200), MANIFEST: Route(429)}, (UNKNOWN, "HTTP 429")),
    ("500", {"/v2/": Route(200), MANIFEST: Route(500)}, (UNKNOWN, "HTTP 500")),
    ("502", {"/v2/": Route(200), MANIFEST: Route(502)}, (UNKNOWN, "HTTP 502")),
    ("503", {"/v2/": Route(200), MANIFEST: Route(503)}, (UNKNOWN, "HTTP 503")),
    ("400 wrong accept", {"/v2/": Route(200), MANIFEST: Route(400)}, (UNKNOWN, "HTTP 400")),
    ("plain 403", {"/v2/": Route(200), MANIFEST: Route(403)}, (PRIVATE, "HTTP 403")),
    ("ping 503", {"/v2/": Route(503), MANIFEST: Route(200)}, (UNKNOWN, "HTTP 503 on /v2/")),
    ("ping 429", {"/v2/": Route(429), MANIFEST: Route(200)}, (UNKNOWN, "HTTP 429 on /v2/")),
    (
        "redirected manifest",
        {
            "/v2/": Route(200),
            MANIFEST: Route(307, {"Location": "/elsewhere"}),
            "/elsewhere": Route(200),
        },
        (PUBLIC, "HTTP 200"),
    ),
]


@pytest.mark.parametrize(
    ("routes", "answer"), [c[1:] for c in STUB_CASES], ids=[c[0] for c in STUB_CASES]
)
def test_stub_answers(
    routes: dict[str, Route], answer: tuple[Verdict, str], tmp_path: Path
) -> None:
    with stub_registry(routes) as stub:
        image = f"{stub.domain}/team/app:1.0"
        first, seen, second = probe_twice(stub, image, tmp_path)

    assert (first[key(image)].verdict, first[key(image)].detail) == answer
    if answer[0] is UNKNOWN:  # never cached: asked again
        assert not second[key(image)].cached
        assert len(stub.requests()) > seen
    else:
        assert second[key(image)].cached
        assert len(stub.requests()) == seen


def realm_routes(token_route: Route, manifest: Route | None = None) -> dict[str, Route]:
    """A registry whose /v2/ sends a Bearer challenge to its own /token (set per stub)."""
    return {
        "/v2/": Route(401),  # challenge header filled in once the stub's address is known
        "/token": token_route,
        MANIFEST: manifest or Route(401, authorized=Route(200)),
    }


TOKEN_CASES = [
    ("realm 401", Route(401), (PRIVATE, "401 from token realm")),
    ("realm 403", Route(403), (PRIVATE, "403 from token realm")),
    ("realm 500", Route(500), (UNKNOWN, "token realm answered HTTP 500")),
    ("realm 429", Route(429), (UNKNOWN, "token realm answered HTTP 429")),
    (
        "no token",
        Route(200, body=b'{"expires_in": 60}'),
        (UNKNOWN, "token realm answered without a token"),
    ),
    ("not json", Route(200, body=b"<html>"), (UNKNOWN, "token realm answered no JSON")),
    ("token", Route(200, body=token_body()), (PUBLIC, "HTTP 200")),
    ("access_token", Route(200, body=b'{"access_token": "t"}'), (PUBLIC, "HTTP 200")),
]


@pytest.mark.parametrize(
    ("token_route", "answer"), [c[1:] for c in TOKEN_CASES], ids=[c[0] for c in TOKEN_CASES]
)
def test_token_realm_answers(
    token_route: Route, answer: tuple[Verdict, str], tmp_path: Path
) -> None:
    routes = realm_routes(token_route)
    with stub_registry(routes) as stub:
        routes["/v2/"] = Route(401, bearer_to(f"http://{stub.domain}/token"))
        image = f"{stub.domain}/team/app:1.0"
        first, seen, second = probe_twice(stub, image, tmp_path)

    assert (first[key(image)].verdict, first[key(image)].detail) == answer
    assert second[key(image)].cached is (answer[0] is not UNKNOWN)
    if answer[0] is not UNKNOWN:
        assert len(stub.requests()) == seen  # a realm refusal is remembered too
        assert (second[key(image)].verdict, second[key(image)].detail) == answer
    token_requests = [seen for seen in stub.requests() if seen.path.startswith("/token")]
    assert token_requests
    for request in token_requests:
        assert "Authorization" not in request.headers  # anonymous, always
        assert "scope=repository%3Ateam%2Fapp%3Apull" in request.path
        assert "service=stub" in request.path


def test_per_repository_challenge_is_followed(tmp_path: Path) -> None:
    """/v2/ lets anyone in, the repository asks for a token: the anonymous 401 must not
    be what is cached, the tokened answer is."""
    routes = {"/v2/": Route(200), "/token": Route(200, body=token_body())}
    with stub_registry(routes) as stub:
        routes[MANIFEST] = Route(
            401, bearer_to(f"http://{stub.domain}/token"), authorized=Route(200)
        )
        image = f"{stub.domain}/team/app:1.0"
        first, _, second = probe_twice(stub, image, tmp_path)
        heads = [seen for seen in stub.requests() if seen.method == "HEAD"]

    assert first[key(image)] == ProbeResult(PUBLIC, "HTTP 200")
    assert second[key(image)] == ProbeResult(PUBLIC, "HTTP 200", cached=True)
    assert [bool(seen.headers.get("Authorization")) for seen in heads] == [False, True]
    assert heads[1].headers["Authorization"] == "Bearer anon-token"


def test_invalid_realm_is_unknown() -> None:
    routes = {"/v2/": Route(401, {"WWW-Authenticate": 'Bearer realm="ftp://nowhere/token"'})}
    with stub_registry(routes) as stub:
        image = f"{stub.domain}/team/app:1.0"
        results = probe_all(refs(image), stub_settings(stub))
    assert results[key(image)] == ProbeResult(UNKNOWN, "invalid URL")


def test_request_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All four media types; no Authorization, even with a ~/.netrc entry for the host."""
    with stub_registry({"/v2/": Route(200), MANIFEST: Route(200)}) as stub:
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine {stub.host} login someone password secret\n")
        monkeypatch.setenv("NETRC", str(netrc))
        image = f"{stub.domain}/team/app:1.0"
        results = probe_all(refs(image), stub_settings(stub))
        seen = stub.requests()

    assert results[key(image)] == ProbeResult(PUBLIC, "HTTP 200")
    assert [(s.method, s.path) for s in seen] == [("GET", "/v2/"), ("HEAD", MANIFEST)]
    assert all("Authorization" not in s.headers for s in seen)
    accept = [part.strip() for part in seen[1].headers["Accept"].split(",")]
    assert accept == [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]


def test_timeout_is_unknown() -> None:
    with stub_registry({"/v2/": Route(200), MANIFEST: Route(200, delay=3)}) as stub:
        image = f"{stub.domain}/team/app:1.0"
        results = probe_all(refs(image), stub_settings(stub, timeout=0.5))
    assert results[key(image)] == ProbeResult(UNKNOWN, "timeout after 0.5s")


def test_deadline_returns_on_time_whatever_hangs() -> None:
    with stub_registry({"/v2/": Route(200)}, default=Route(200, delay=8)) as stub:
        images = [f"{stub.domain}/team/app{i}:1.0" for i in range(40)]
        started = time.monotonic()
        results = probe_all(refs(*images), stub_settings(stub, timeout=6, deadline=1.0))
        elapsed = time.monotonic() - started

    assert elapsed < 2.0
    assert len(results) == 40
    assert {r for r in results.values()} == {ProbeResult(UNKNOWN, "deadline exceeded")}


def test_probes_run_in_parallel() -> None:
    with stub_registry({"/v2/": Route(200)}, default=Route(200, delay=0.5)) as stub:
        images = [f"{stub.domain}/team/app{i}:1.0" for i in range(12)]
        started = time.monotonic()
        results = probe_all(refs(*images), stub_settings(stub, concurrency=12))
        elapsed = time.monotonic() - started
        pings = [s for s in stub.requests() if s.path == "/v2/"]

    assert {r.verdict for r in results.values()} == {PUBLIC}
    assert elapsed < 3.0  # 12 x 0.5 s one after the other would be 6 s
    assert len(pings) == 1  # shared by all threads


def test_one_connection_serves_many_images() -> None:
    """A manifest HEAD hands its connection back: one worker probes every image over
    the connection its ping opened (a new one each would cost a TLS handshake)."""
    with stub_registry({"/v2/": Route(200)}, default=Route(200)) as stub:
        images = [f"{stub.domain}/team/app{i}:1.0" for i in range(6)]
        results = probe_all(refs(*images), stub_settings(stub, concurrency=1))
        seen = stub.requests()

    assert {r.verdict for r in results.values()} == {PUBLIC}
    assert len(seen) == 7
    assert len({s.connection for s in seen}) == 1


def test_distinct_keys_probed_once() -> None:
    texts = ["nginx", "docker.io/library/nginx:latest", "index.docker.io/library/nginx", "nginx"]
    results = probe_cached(refs(*texts), ProbeSettings(), "none", offline=True)  # no network
    assert results == {
        ("docker.io", "library/nginx", "latest"): ProbeResult(UNKNOWN, "offline, not in cache")
    }


def test_docker_hub_answers_are_looked_up_under_its_api_host(tmp_path: Path) -> None:
    """docker.io images are asked of registry-1.docker.io: a stored answer for that URL is
    found, offline, without touching the network."""
    cache = str(tmp_path / "probes.sqlite")
    backend = open_backend(cache, print)
    assert backend is not None
    url = "https://registry-1.docker.io/v2/library/nginx/manifests/1.25"
    assert store_answers(backend, [Entry(url, 200, "OK", {})], 3600) == []

    results = probe_cached(refs("nginx:1.25"), ProbeSettings(), cache, 3600, print, offline=True)

    assert results == {key("nginx:1.25"): ProbeResult(PUBLIC, "HTTP 200", cached=True)}


def test_no_images_no_work() -> None:
    assert probe_all([], ProbeSettings()) == {}


# -- pure policy -------------------------------------------------------------------------


def _failed_connection(cause: OSError) -> BaseException:
    """What urllib3 raises when a connection cannot be made: its error, caused by the
    socket's."""
    error = urllib3.exceptions.NewConnectionError(None, f"Failed to connect: {cause}")  # type: ignore[arg-type]
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (urllib3.exceptions.ConnectTimeoutError(), "timeout after 5.0s"),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), "timeout after 5.0s"),  # type: ignore[arg-type]
        (
            urllib3.exceptions.NameResolutionError("h", None, socket.gaierror(-2, "x")),  # type: ignore[arg-type]
            "DNS lookup failed",
        ),
        (_failed_connection(ConnectionRefusedError(111, "refused")), "connection refused"),
        (
            urllib3.exceptions.ProtocolError(
                "Connection aborted.", ConnectionResetError(104, "reset")
            ),
            "connection reset",
        ),
        (
            urllib3.exceptions.ProtocolError("Connection aborted.", RemoteDisconnected("closed")),
            "connection closed by the registry",
        ),
        (
            urllib3.exceptions.SSLError(ssl.SSLCertVerificationError(1, "verify failed")),
            "TLS error: certificate verify failed",
        ),
        (TooManyRedirects(), "too many redirects"),
        (urllib3.exceptions.ProxyError("Unable to connect to proxy", OSError("x")), "proxy error"),
        (
            UnsupportedProxy("SOCKS proxy p: not supported"),
            "proxy error (SOCKS proxies are not supported)",
        ),
        (urllib3.exceptions.LocationParseError("http://[::1"), "invalid URL"),
        (BadURL("Port could not be cast to integer value as 'x'"), "invalid URL"),
    ],
)
def test_describe_error(exc: BaseException, text: str) -> None:
    assert describe_error(exc, 5.0) == text


# -- end to end: the command line over the real registries --------------------------------

PROXY = "proxy.replicated.com/proxy/my-kots-app/"


def rewriter_command(env: Registries, tmp_path: Path, *extra: str) -> dict[str, object]:
    """`python -m rewriter` with the loopback registries' options, as Popen arguments."""
    import sys

    args = [
        *("--license", str(ROOT / "examples" / "license.yaml")),
        *("--cache", str(tmp_path / "probes.sqlite")),
        *("--insecure-registry", env.anonymous.domain),
        *("--insecure-registry", env.unused_host),
        *("--ca-bundle", env.ca_bundle),
        *("--timeout", "3", "--deadline", "20"),
        *extra,
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REWRITER_", "ARGOCD_"))}
    clean.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    return {"args": [sys.executable, "-m", "rewriter", *args], "env": clean, "cwd": tmp_path}


def rewriter(env: Registries, tmp_path: Path, stdin: bytes, *extra: str) -> tuple[int, bytes, str]:
    import subprocess

    done = subprocess.run(
        **rewriter_command(env, tmp_path, *extra),  # type: ignore[call-overload]
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr.decode()


def test_render_twice_same_bytes_no_requests(registries: Registries, tmp_path: Path) -> None:
    env = registries
    public = [env.anonymous.image("library/app", "1.0"), env.token.image("public/app", "1.0")]
    private = [
        env.basic.image("team/secret", "1.0"),
        env.token.image("private/app", "1.0"),
        env.token.image("denied/app", "1.0"),
    ]
    missing = env.anonymous.image("no/such-repo", "1.0")
    stdin = shop_deployment(*public, *private, missing)

    code, first, errors = rewriter(env, tmp_path, stdin)
    before = settled(env.requests)
    code_again, second, errors_again = rewriter(env, tmp_path, stdin)

    assert code == 0, errors
    assert code_again == 0, errors_again
    text = first.decode()
    for image in public:
        assert f"image: {image}\n" in text
    for image in [*private, missing]:
        assert f"image: {PROXY}{image}\n" in text
    assert missing in errors  # proxied, with a warning
    assert second == first  # same bytes
    assert settled(env.requests) == before  # and not one request to any registry


def test_unreachable_registry_follows_on_probe_error(
    registries: Registries, tmp_path: Path
) -> None:
    """All three policies at once (three processes side by side: each starts Python)."""
    import subprocess

    unreachable = f"{registries.unused_host}/some/app:1.0"
    stdin = shop_deployment(registries.anonymous.image("library/app", "1.0"), unreachable)
    runs = {}
    for policy in ("proxy", "keep", "fail"):
        workdir = tmp_path / policy
        workdir.mkdir()
        runs[policy] = subprocess.Popen(
            **rewriter_command(registries, workdir, "--on-probe-error", policy),  # type: ignore[call-overload]
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    done = {policy: (run, run.communicate(stdin, timeout=60)) for policy, run in runs.items()}

    for policy in ("proxy", "keep"):
        run, (out, errors) = done[policy]
        assert run.returncode == 0, errors
        expected = PROXY + unreachable if policy == "proxy" else unreachable
        assert f"image: {expected}\n" in out.decode()
    run, (out, errors) = done["fail"]
    assert run.returncode == 1
    assert out == b""
    assert unreachable in errors.decode()
