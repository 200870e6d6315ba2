"""Security: what the probe sends, where it may go, and where the license ID may appear.

- Credentials: a registry stand-in records every header line it receives while the CLI
  runs with a docker login, a ~/.netrc, proxy credentials in the environment and a
  distinctive license ID; the only Authorization it may see is the anonymous token its
  own realm handed out.
- Server-side request forgery: token realms and redirects (both chosen by whoever runs
  the registry an untrusted commit names) may not reach link-local or cloud metadata
  addresses, nor take HTTPS to plain HTTP; `--probe-allow` / `--probe-deny` restrict
  the hosts further. The pure policy is tested on its own, the transport's check of the
  connected address with a name that resolves where it should not.
- The license ID never reaches stderr, the log file, `scan` output or the cache.

The cache file's mode is tested in-process by tests/integration/test_cache_write.py::test_file_is_private;
here it is checked again after a real CLI render under umask 000.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import PROXY_VARIABLES, ROOT
from support.faultserver import (
    Behaviour,
    FaultServer,
    Request,
    Tls,
    make_tls,
    redirect,
    status,
    token,
    with_token,
)
from support.helpers import probe_cached
from support.registries import Registries, pick_hosts

from rewriter.errors import RewriterError
from rewriter.options import Flags
from rewriter.probe import policy as probe_policy
from rewriter.probe.policy import ProbeSettings, forbidden_address, host_allowed, redirect_refusal
from rewriter.probe.registry import probe_all
from rewriter.probe.verdict import ProbeResult, Verdict
from rewriter.reference import ImageRef
from rewriter.settings import resolve

MANIFEST = "/v2/team/app/manifests/1.0"
UNKNOWN = Verdict.UNKNOWN
LICENSE_ID = "LIC-5ecr3t-7f3a9c1d-do-not-leak"
DOCKER_USER, DOCKER_PASSWORD = "docker-user", "docker-p4ss-in-config"
NETRC_PASSWORD = "netrc-p4ss"
PROXY_USER, PROXY_PASSWORD = "proxy-user", "proxy-p4ss"


pytestmark = pytest.mark.usefixtures("isolated")


# -- the pure policy ---------------------------------------------------------------------------

NONE = ProbeSettings()


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("169.254.169.254", "cloud metadata endpoint"),
        ("169.254.169.254:80", "cloud metadata endpoint"),
        ("169.254.169.254.", "cloud metadata endpoint"),
        ("169.254.170.2", "cloud metadata endpoint"),
        ("100.100.100.200", "cloud metadata endpoint"),
        ("[fd00:ec2::254]", "cloud metadata endpoint"),
        ("[fd00:ec2::254]:80", "cloud metadata endpoint"),
        ("fd00:ec2::254", "cloud metadata endpoint"),
        ("[::ffff:169.254.169.254]", "cloud metadata endpoint"),
        ("[::ffff:a9fe:a9fe]", "cloud metadata endpoint"),
        ("[64:ff9b::a9fe:a9fe]", "cloud metadata endpoint"),
        ("2852039166", "cloud metadata endpoint"),  # 169.254.169.254 as one number
        ("0xa9fea9fe", "cloud metadata endpoint"),
        ("0251.0376.0251.0376", "cloud metadata endpoint"),  # octal
        ("169.254.43518", "cloud metadata endpoint"),  # a.b.c form
        ("metadata.google.internal", "cloud metadata endpoint"),
        ("METADATA.Google.Internal.", "cloud metadata endpoint"),
        ("metadata.google.internal:80", "cloud metadata endpoint"),
        ("metadata", "cloud metadata endpoint"),
        ("169.254.0.1", "link-local address"),
        ("169.254.255.255:443", "link-local address"),
        ("[fe80::1]", "link-local address"),
        ("[fe80::1%25eth0]", "link-local address"),
        ("[febf::1]:5000", "link-local address"),
        ("[::ffff:169.254.1.1]", "link-local address"),
    ],
)
def test_forbidden_hosts(host: str, reason: str) -> None:
    assert host_allowed(host, NONE) == f"probe denied: {reason}"
    # --probe-allow cannot reopen them
    assert host_allowed(host, ProbeSettings(allow=("*",))) == f"probe denied: {reason}"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",  # the loopback registries of this suite, and localhost:5000 setups
        "127.45.67.1",
        "localhost:5000",
        "[::1]:5000",
        "10.0.0.5",  # in-cluster registries
        "192.168.1.10:5000",
        "quay.io",
        "registry-1.docker.io",
        "169.253.255.255",
        "169.255.0.1",
        "metadata.google.internal.example.com",
        "metadata-registry.example.com",
        "fe7f::1",
        "[fec0::1]",
        "2852039166.example.com",
    ],
)
def test_ordinary_hosts_are_allowed_by_default(host: str) -> None:
    assert host_allowed(host, NONE) is None
    assert forbidden_address(host.split(":")[0] if host.count(":") == 1 else host) is None


def test_deny_and_allow_globs() -> None:
    deny = ProbeSettings(deny=("*.internal.example.com", "10.*", "localhost:5000"))
    assert host_allowed("a.internal.example.com", deny) == (
        "probe denied by --probe-deny '*.internal.example.com'"
    )
    assert host_allowed("A.Internal.Example.COM:443", deny) is not None  # case, port
    assert host_allowed("10.1.2.3:5000", deny) == "probe denied by --probe-deny '10.*'"
    assert host_allowed("localhost:5000", deny) == "probe denied by --probe-deny 'localhost:5000'"
    assert host_allowed("localhost:5001", deny) is None  # a glob with a port wants that port
    assert host_allowed("quay.io", deny) is None

    allow = ProbeSettings(allow=("quay.io", "*.docker.io", "docker.io"))
    assert host_allowed("quay.io", allow) is None
    assert host_allowed("quay.io:443", allow) is None  # host alone also matches
    assert host_allowed("auth.docker.io", allow) is None
    assert host_allowed("registry-1.docker.io", ProbeSettings(allow=("docker.io",))) is None
    assert host_allowed("ghcr.io", allow) == "probe denied: not in --probe-allow"

    both = ProbeSettings(allow=("*",), deny=("ghcr.io",))  # deny wins
    assert host_allowed("ghcr.io", both) == "probe denied by --probe-deny 'ghcr.io'"
    assert host_allowed("quay.io", both) is None
    docker_hub = ProbeSettings(deny=("docker.io",))  # Docker Hub's API host answers to it
    assert host_allowed("registry-1.docker.io", docker_hub) is not None


@pytest.mark.parametrize("glob", ["docker.io", "registry-1.docker.io", "*docker*"])
def test_docker_hub_denied_by_either_name(glob: str) -> None:
    """Refused before any request (no network needed): by the image's registry name or
    by its API host."""
    results = probe_all([ImageRef.parse("nginx:1.25")], ProbeSettings(deny=(glob,)))
    assert results == {
        ("docker.io", "library/nginx", "1.25"): ProbeResult(
            UNKNOWN, f"probe denied by --probe-deny {glob!r}"
        )
    }


@pytest.mark.parametrize(
    ("url", "origin", "reason"),
    [
        ("https://auth.example.com/token", "https", None),
        ("http://auth.example.com/token", "http", None),  # an insecure registry's realm
        (
            "http://auth.example.com/token",
            "https",
            "token realm auth.example.com: probe denied: HTTPS downgraded to plain HTTP",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "http",
            "token realm 169.254.169.254: probe denied: cloud metadata endpoint",
        ),
        (
            "https://[fe80::1]:8443/x",
            "https",
            "token realm [fe80::1]:8443: probe denied: link-local address",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            None,
            "token realm metadata.google.internal: probe denied: cloud metadata endpoint",
        ),
        ("ftp://nowhere/token", "https", None),  # the transport says "invalid URL"
        ("http://[::1/token", "http", None),  # unreadable: the transport says "invalid URL"
    ],
)
def test_redirect_refusal(url: str, origin: str | None, reason: str | None) -> None:
    assert redirect_refusal(url, NONE, origin, "token realm") == reason


# -- settings: flags, environment, config ---------------------------------------------------


def test_probe_globs_from_flags_env_and_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = Flags(app_slug="a", probe_allow=["*.Example.com"], probe_deny=["bad.example.com"])
    settings = resolve(flags, {})
    assert settings.probe_allow == ("*.example.com",)
    assert settings.probe_deny == ("bad.example.com",)

    config = tmp_path / "rewriter.yaml"
    config.write_text("options:\n  probe-deny: ['10.*', '192.168.*']\n  probe-allow: '*'\n")
    from_config = resolve(Flags(app_slug="a", config=config), {})
    assert from_config.probe_deny == ("10.*", "192.168.*")
    assert from_config.probe_allow == ("*",)

    with pytest.raises(RewriterError, match="--probe-deny: an empty host glob"):
        resolve(Flags(app_slug="a", probe_deny=[" "]), {})


# -- stand-ins, in-process ----------------------------------------------------------------------


@dataclass
class Site:
    """Loopback stand-ins: `a` and `b` on port 80 (plain HTTP), `tls` on 443 with `tls_host`
    serving plain HTTP on its port 80 too, to see whether a downgrade reached it."""

    hosts: list[str]
    tls: Tls


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    pytest.importorskip("cryptography")
    from support.registries import can_bind_privileged

    if not can_bind_privileged():
        pytest.skip("needs to bind ports 80 and 443 on loopback (root, or a low port start)")
    hosts = pick_hosts(4, ports=(80, 443))
    return Site(hosts, make_tls(tmp_path_factory.mktemp("security-tls"), hosts))


@pytest.fixture
def servers() -> Iterator[list[FaultServer]]:
    """Servers a test starts; all stopped afterwards."""
    started: list[FaultServer] = []
    yield started
    for server in started:
        server.stop()


def serve(
    servers: list[FaultServer], host: str, port: int, routes: dict[str, Behaviour], **kw: object
) -> FaultServer:
    server = FaultServer(host, port, routes, **kw).start()  # type: ignore[arg-type]
    servers.append(server)
    return server


def bearer(realm: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="{realm}",service="stand-in"'}


COOKIE = {"Set-Cookie": "session=set-by-registry; Path=/"}


def registry_routes(realm: str) -> dict[str, Behaviour]:
    """A token-auth registry: /v2/ challenges, the realm hands out `anon-token`, the
    manifest answers 200 to it. Both set a cookie, which must never come back."""
    body = b'{"token": "anon-token"}'
    return {
        "/v2/": status(401, {**bearer(realm), **COOKIE}),
        "/token": status(200, {"Content-Type": "application/json", **COOKIE}, body),
        MANIFEST: with_token(status(200), status(401, bearer(realm))),
    }


def probe_one(image: str, site: Site, **changes: object) -> ProbeResult:
    values: dict[str, object] = {
        "insecure_registries": frozenset(site.hosts),
        "ca_bundle": str(site.tls.ca_cert),
        "timeout": 2.0,
        "deadline": 10.0,
    }
    values.update(changes)
    ref = ImageRef.parse(image)
    results = probe_all([ref], ProbeSettings(**values))  # type: ignore[arg-type]
    return results[(ref.registry, ref.repository, ref.reference)]


@pytest.mark.parametrize(
    ("realm", "reason"),
    [
        (
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "token realm 169.254.169.254: probe denied: cloud metadata endpoint",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/"
            "default/token",
            "token realm metadata.google.internal: probe denied: cloud metadata endpoint",
        ),
        ("http://[fd00:ec2::254]/latest", "token realm [fd00:ec2::254]: probe denied: cloud"),
        ("http://169.254.10.10:8080/t", "token realm 169.254.10.10:8080: probe denied: link-local"),
        ("http://[fe80::1]/t", "token realm [fe80::1]: probe denied: link-local address"),
    ],
)
def test_realm_may_not_reach_metadata_or_link_local(
    realm: str, reason: str, site: Site, servers: list[FaultServer]
) -> None:
    server = serve(servers, site.hosts[0], 80, registry_routes(realm))
    result = probe_one(f"{server.host}/team/app:1.0", site)
    assert result.verdict is UNKNOWN
    assert result.detail.startswith(reason), result.detail
    assert [r.path for r in server.seen()] == ["/v2/"]  # nothing after the challenge


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "redirect to 169.254.169.254: probe denied"),
        ("http://2852039166/latest/meta-data/", "redirect to 2852039166: probe denied: cloud"),
        ("http://metadata.google.internal/", "redirect to metadata.google.internal: probe denied"),
        ("http://169.254.1.1/", "redirect to 169.254.1.1: probe denied: link-local address"),
        ("http://[fe80::2]:5000/", "redirect to [fe80::2]:5000: probe denied: link-local"),
    ],
)
def test_redirect_may_not_reach_metadata_or_link_local(
    location: str, reason: str, site: Site, servers: list[FaultServer]
) -> None:
    routes = {"/v2/": status(200), MANIFEST: redirect(location, 307)}
    server = serve(servers, site.hosts[0], 80, routes)
    result = probe_one(f"{server.host}/team/app:1.0", site)
    assert result.verdict is UNKNOWN
    assert result.detail.startswith(reason), result.detail


def test_https_may_not_be_downgraded(site: Site, servers: list[FaultServer]) -> None:
    """An HTTPS registry redirecting its manifest to plain HTTP, or naming a plain-HTTP
    realm: refused, and the plain-HTTP side hears nothing."""
    host, realm_host = site.hosts[0], site.hosts[1]
    plain = serve(servers, host, 80, {"/v2/": status(200)}, default=status(200))
    plain_realm = serve(servers, realm_host, 80, {"/token": token()})
    routes = {
        "/v2/": status(200),
        MANIFEST: redirect(f"http://{host}/v2/team/app/manifests/1.0", 301),
        "/v2/realm/app/manifests/1.0": status(401, bearer(f"http://{realm_host}/token")),
    }
    secure = serve(servers, host, 443, routes, tls=site.tls.server)

    redirected = probe_one(f"{host}/team/app:1.0", site, insecure_registries=frozenset())
    realm = probe_one(f"{host}/realm/app:1.0", site, insecure_registries=frozenset())

    assert redirected == ProbeResult(
        UNKNOWN, f"redirect to {host}: probe denied: HTTPS downgraded to plain HTTP"
    )
    assert realm == ProbeResult(
        UNKNOWN, f"token realm {realm_host}: probe denied: HTTPS downgraded to plain HTTP"
    )
    assert plain.seen() == [] and plain_realm.seen() == []
    assert len(secure.seen()) >= 2


def test_denied_realm_and_redirect_hosts_hear_nothing(
    site: Site, servers: list[FaultServer]
) -> None:
    registry_host, other_host = site.hosts[0], site.hosts[1]
    other = serve(servers, other_host, 80, {"/token": token()}, default=status(200))
    routes = {
        "/v2/": status(200),
        MANIFEST: redirect(f"http://{other_host}/v2/team/app/manifests/1.0"),
        "/v2/realm/app/manifests/1.0": status(401, bearer(f"http://{other_host}/token")),
    }
    serve(servers, registry_host, 80, routes)
    deny = (other_host,)

    redirected = probe_one(f"{registry_host}/team/app:1.0", site, deny=deny)
    realm = probe_one(f"{registry_host}/realm/app:1.0", site, deny=deny)
    allowed_only = probe_one(f"{registry_host}/team/app:1.0", site, allow=(registry_host,))

    assert (
        redirected.detail
        == f"redirect to {other_host}: probe denied by --probe-deny '{other_host}'"
    )
    assert realm.detail == f"token realm {other_host}: probe denied by --probe-deny '{other_host}'"
    assert allowed_only.detail == f"redirect to {other_host}: probe denied: not in --probe-allow"
    assert other.seen() == []
    followed = probe_one(f"{registry_host}/team/app:1.0", site)  # the control: no flags
    assert followed == ProbeResult(Verdict.PUBLIC, "HTTP 200")
    assert len(other.seen()) == 1


def test_denied_registry_is_not_contacted_even_from_cache(
    site: Site, servers: list[FaultServer], tmp_path: Path
) -> None:
    server = serve(servers, site.hosts[0], 80, {"/v2/": status(200), MANIFEST: status(200)})
    image = ImageRef.parse(f"{server.host}/team/app:1.0")
    key = (image.registry, image.repository, image.reference)
    cache = str(tmp_path / "probes.sqlite")
    settings = ProbeSettings(insecure_registries=frozenset(site.hosts), timeout=2, deadline=10)
    assert probe_cached([image], settings, cache, 3600, print)[key].verdict is (Verdict.PUBLIC)
    seen = len(server.seen())

    denied = ProbeSettings(insecure_registries=frozenset(site.hosts), deny=("127.*",))
    again = probe_cached([image], denied, cache, 3600, print)[key]

    assert again == ProbeResult(UNKNOWN, "probe denied by --probe-deny '127.*'")
    assert len(server.seen()) == seen


def test_token_is_not_carried_to_another_origin(site: Site, servers: list[FaultServer]) -> None:
    """A tokened manifest HEAD redirected elsewhere goes on without the token."""
    registry_host, cdn_host = site.hosts[0], site.hosts[1]
    cdn = serve(servers, cdn_host, 80, {MANIFEST: status(200)})
    routes = registry_routes(f"http://{registry_host}/token")
    routes[MANIFEST] = with_token(
        redirect(f"http://{cdn_host}{MANIFEST}", 307),
        status(401, bearer(f"http://{registry_host}/token")),
    )
    registry = serve(servers, registry_host, 80, routes)

    result = probe_one(f"{registry_host}/team/app:1.0", site)

    assert result == ProbeResult(Verdict.PUBLIC, "HTTP 200")
    assert [r.header("Authorization") for r in registry.seen() if r.path == MANIFEST] == [
        ["Bearer anon-token"]
    ]
    assert [r.header("Authorization") for r in cdn.seen()] == [[]]


def test_connected_address_is_checked_too(
    site: Site, servers: list[FaultServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name passes the name check but resolves to a forbidden address (DNS rebinding, a
    wildcard DNS service): the transport refuses it after connecting, before sending a
    byte. Loopback only: the stand-in's own address is declared forbidden for the test."""
    server = serve(servers, site.hosts[0], 80, {"/v2/": status(200)}, default=status(200))
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: object, *args: object, **kwargs: object) -> object:
        if host == "rebind.test":
            host = server.host
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    import ipaddress

    monkeypatch.setattr(
        probe_policy,
        "LINK_LOCAL",
        (*probe_policy.LINK_LOCAL, ipaddress.ip_network(f"{server.host}/32")),
    )

    result = probe_one(
        "rebind.test/team/app:1.0", site, insecure_registries=frozenset({"rebind.test"})
    )

    assert result == ProbeResult(
        UNKNOWN, f"probe denied: rebind.test is a link-local address ({server.host})"
    )
    assert server.seen() == []  # connected, but not one request sent


# -- the command line: what a registry receives ---------------------------------------------


def hostile_home(home: Path, registry_host: str) -> dict[str, str]:
    """A docker login, a podman/skopeo auth file and a ~/.netrc, all for the registry;
    environment variables that point at them, and proxy credentials."""
    auth = base64.b64encode(f"{DOCKER_USER}:{DOCKER_PASSWORD}".encode()).decode()
    config = f'{{"auths": {{"{registry_host}": {{"auth": "{auth}"}}, "https://{registry_host}": {{"auth": "{auth}"}}}}}}'
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(config)
    (home / "auth.json").write_text(config)
    netrc = home / ".netrc"
    netrc.write_text(f"machine {registry_host} login netrc-user password {NETRC_PASSWORD}\n")
    netrc.chmod(0o600)
    return {
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / ".docker"),
        "REGISTRY_AUTH_FILE": str(home / "auth.json"),
        "NETRC": str(netrc),
        "REWRITER_LICENSE_ID": LICENSE_ID,
    }


def cli(
    workdir: Path, args: list[str], stdin: bytes, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """`python -m rewriter ARGS` started in `workdir` with `stdin` (from a file, so that
    several can be started before any is waited for)."""
    (workdir / "stdin.yaml").write_bytes(stdin)
    with open(workdir / "stdin.yaml", "rb") as source:
        return subprocess.Popen(
            [sys.executable, "-m", "rewriter", *args],
            env={**_clean_env(), "XDG_CACHE_HOME": str(workdir / "xdg"), **env},
            cwd=workdir,
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


def pod(*images: str) -> bytes:
    containers = "".join(f"  - name: c{i}\n    image: {image}\n" for i, image in enumerate(images))
    return f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n{containers}".encode()


SECRETS = (
    LICENSE_ID,
    DOCKER_PASSWORD,
    NETRC_PASSWORD,
    PROXY_PASSWORD,
    base64.b64encode(f"{DOCKER_USER}:{DOCKER_PASSWORD}".encode()).decode(),
    base64.b64encode(f"LICENSE_ID:{LICENSE_ID}".encode()).decode(),
    "netrc-user",
    DOCKER_USER,
)


def assert_anonymous(requests_seen: list[Request], *, through_proxy: bool) -> None:
    assert requests_seen
    for request in requests_seen:
        names = {name.lower() for name, _ in request.headers}
        allowed = {"host", "user-agent", "accept-encoding", "accept", "connection"}
        if request.path.startswith("/v2/") and request.path != "/v2/":
            allowed.add("authorization")  # the manifest HEAD, with the realm's token
        if through_proxy:
            allowed.add("proxy-authorization")  # for the proxy, from its URL
        assert names <= allowed, (request.target, names - allowed)
        assert request.header("Authorization") in ([], ["Bearer anon-token"])
        text = "\n".join(f"{name}: {value}" for name, value in request.headers)
        if through_proxy:
            text = text.replace(
                f"Proxy-Authorization: {request.header('Proxy-Authorization')[0]}", ""
            )
        for secret in SECRETS:
            assert secret not in text and secret not in request.target, (secret, request.target)
    assert any(r.header("Authorization") == ["Bearer anon-token"] for r in requests_seen)


def test_probes_carry_no_ambient_credentials(
    site: Site, servers: list[FaultServer], tmp_path: Path
) -> None:
    """Direct, with proxy variables that exclude the registry (NO_PROXY), and through a
    proxy with credentials in its URL: the proxy (here a stand-in answering as the
    registry) gets Proxy-Authorization, nobody gets anything else."""
    direct_host, proxied_host, proxy_host = site.hosts[0], site.hosts[1], site.hosts[2]
    direct = serve(servers, direct_host, 80, registry_routes(f"http://{direct_host}/token"))
    # The proxy stand-in answers absolute-form requests for the proxied registry.
    proxy = serve(servers, proxy_host, 80, registry_routes(f"http://{proxied_host}/token"))
    proxy_url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@{proxy_host}:80"
    runs = {}
    hosts = {"direct": direct_host, "proxied": proxied_host}
    proxy_env = {
        "direct": {"HTTP_PROXY": proxy_url, "https_proxy": proxy_url, "NO_PROXY": direct_host},
        "proxied": {"HTTP_PROXY": proxy_url},
    }
    for name, host in hosts.items():
        workdir = tmp_path / name
        workdir.mkdir()
        env = {**hostile_home(workdir / "home", host), **proxy_env[name]}
        args = ["--app-slug", "my-app", "--insecure-registry", host, "--deadline", "15"]
        runs[name] = cli(workdir, args, pod(f"{host}/team/app:1.0"), env)
    done = {name: run.communicate(timeout=60) for name, run in runs.items()}

    for name, run in runs.items():
        out, err = done[name]
        assert run.returncode == 0, err.decode()
        assert f"image: {hosts[name]}/team/app:1.0\n" in out.decode()  # public: kept
    assert_anonymous(direct.seen(), through_proxy=False)
    assert_anonymous(proxy.seen(), through_proxy=True)
    assert all(r.target.startswith(f"http://{proxied_host}/") for r in proxy.seen())
    expected = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    assert {v for r in proxy.seen() for v in r.header("Proxy-Authorization")} == {expected}
    assert [(r.method, r.path) for r in direct.seen()] == [
        ("GET", "/v2/"),
        ("GET", "/token"),
        ("HEAD", MANIFEST),
    ]


def test_probe_deny_and_allow_through_the_cli(
    site: Site, servers: list[FaultServer], tmp_path: Path
) -> None:
    """A denied registry is not contacted and counts as a failed probe: --on-probe-error
    decides (proxy, keep, fail). From the environment, as Argo CD would set it."""
    denied_host, allowed_host = site.hosts[0], site.hosts[1]
    denied = serve(servers, denied_host, 80, {"/v2/": status(200)}, default=status(200))
    allowed = serve(servers, allowed_host, 80, {"/v2/": status(200)}, default=status(200))
    stdin = pod(f"{denied_host}/team/app:1.0", f"{allowed_host}/team/app:1.0")
    base = ["--app-slug", "my-app", "--timeout", "3", "--deadline", "15"]
    for host in (denied_host, allowed_host):
        base += ["--insecure-registry", host]
    runs = {}
    for policy in ("proxy", "keep", "fail"):
        workdir = tmp_path / policy
        workdir.mkdir()
        env = {
            "HOME": str(workdir),
            "REWRITER_LICENSE_ID": "L",
            "REWRITER_PROBE_DENY": f"nothing.example.com {denied_host}",
            "REWRITER_ON_PROBE_ERROR": policy,
        }
        runs[policy] = cli(workdir, base, stdin, env)
    allow_dir = tmp_path / "allow"
    allow_dir.mkdir()
    # The sidecar's own setting wins over an Application's plugin.env (ARGOCD_ENV_...).
    allow_env = {
        "HOME": str(allow_dir),
        "REWRITER_LICENSE_ID": "L",
        "REWRITER_PROBE_ALLOW": allowed_host,
        "ARGOCD_ENV_REWRITER_PROBE_ALLOW": "*",
    }
    runs["allow"] = cli(allow_dir, ["scan", "--format", "json", *base], stdin, allow_env)
    done = {name: run.communicate(timeout=60) for name, run in runs.items()}

    reason = f"probe denied by --probe-deny '{denied_host}'"
    proxy_out, proxy_err = done["proxy"]
    assert runs["proxy"].returncode == 0, proxy_err.decode()
    assert (
        f"image: proxy.replicated.com/proxy/my-app/{denied_host}/team/app:1.0" in proxy_out.decode()
    )
    assert f"image: {allowed_host}/team/app:1.0\n" in proxy_out.decode()
    assert reason in proxy_err.decode()
    keep_out, keep_err = done["keep"]
    assert runs["keep"].returncode == 0, keep_err.decode()
    assert f"image: {denied_host}/team/app:1.0\n" in keep_out.decode()
    fail_out, fail_err = done["fail"]
    assert runs["fail"].returncode == 1
    assert fail_out == b""
    assert reason in fail_err.decode()
    import json

    rows = json.loads(done["allow"][0])["images"]
    assert (
        rows[0]["reason"]
        == "probe failed: probe denied: not in --probe-allow; --on-probe-error=proxy"
    )
    assert rows[1]["probe"] == "public"
    assert denied.seen() == []
    assert len(allowed.seen()) == 4 * 2  # /v2/ and the HEAD, once per run


# -- the license ID stays where it belongs ------------------------------------------------------


def test_license_id_appears_only_in_the_pull_secret(registries: Registries, tmp_path: Path) -> None:
    """Renders (success and failure), scans and the cache, against the real registries,
    with a distinctive license ID from the environment and, once, on the command line."""
    env = registries
    images = [
        env.anonymous.image("library/app", "1.0"),
        env.token.image("public/app", "1.0"),
        env.token.image("private/app", "1.0"),
        env.token.image("denied/app", "1.0"),
        env.basic.image("team/secret", "1.0"),
        env.anonymous.image("no/such-repo", "1.0"),  # a warning that names the image
    ]
    unreachable = f"{env.unused_host}/some/app:1.0"
    cache = tmp_path / "cache" / "probes.sqlite"
    log = tmp_path / "rewriter.log"
    common = [
        "--app-slug", "my-kots-app", "--cache", str(cache), "--log-file", str(log),
        "--insecure-registry", env.anonymous.domain, "--insecure-registry", env.unused_host,
        "--ca-bundle", env.ca_bundle, "--timeout", "3", "--deadline", "15",
    ]  # fmt: skip
    runs: dict[str, tuple[list[str], bytes]] = {
        "render": (common, pod(*images)),
        "scan": (["scan", *common], pod(*images)),
        "scan-json": (["scan", "--format", "json", *common], pod(*images)),
        "fail": ([*common, "--on-probe-error", "fail"], pod(*images, unreachable)),
        "argv": ([*common, "--license-id", LICENSE_ID, "--on-probe-error", "bogus"], pod(*images)),
        "images": (["images", *common], pod(*images)),
    }
    processes = {}
    for name, (args, _) in runs.items():  # all at once, on one cache file and one log
        workdir = tmp_path / name
        workdir.mkdir()
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "rewriter", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env={**_clean_env(), "HOME": str(workdir), "REWRITER_LICENSE_ID": LICENSE_ID},
            # umask 000: the cache must be private by its own doing, not by the umask's.
            preexec_fn=lambda: os.umask(0),  # the child only, before exec
        )
    results = {}
    for name, process in processes.items():
        out, err = process.communicate(runs[name][1], timeout=60)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)

    assert results["render"].returncode == 0, results["render"].stderr.decode()
    assert results["fail"].returncode == 1
    assert results["argv"].returncode == 2  # a usage error, with the ID in argv
    expected_auth = base64.b64encode(f"LICENSE_ID:{LICENSE_ID}".encode()).decode()
    secret = re.search(rb"\.dockerconfigjson: (\S+)", results["render"].stdout)
    assert secret is not None  # the one place the ID belongs
    assert expected_auth in base64.b64decode(secret.group(1)).decode()

    forms = _forms(LICENSE_ID)
    places: dict[str, bytes] = {f"{n} stderr": r.stderr for n, r in results.items()}
    places |= {f"{n} stdout": r.stdout for n, r in results.items() if n != "render"}
    places["log file"] = log.read_bytes()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{cache}{suffix}").exists():
            places[f"cache{suffix}"] = Path(f"{cache}{suffix}").read_bytes()
    for registry in env.registries():
        places[f"{registry.name} access log"] = registry.access_log.read_bytes()
    with env.token_server.log.lock:
        places["token server"] = "\n".join(env.token_server.log.anonymous).encode()
    for where, data in places.items():
        for form in forms:
            assert form not in data, f"license ID ({form!r}) in {where}"
    assert b"warning:" in places["log file"] and b"error:" in places["log file"]
    assert b"no/such-repo" in places["render stderr"]  # the places did get messages

    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700


def _forms(license_id: str) -> list[bytes]:
    """The ID as text, and base64 of it and of the auth pair at each of the three byte
    alignments (so that it is found inside any longer base64 string)."""
    forms = [license_id.encode()]
    for plain in (license_id, f"LICENSE_ID:{license_id}"):
        for pad in range(3):
            encoded = base64.b64encode(b"x" * pad + plain.encode())
            forms.append(encoded[4 if pad else 0 :][:20])
    return forms


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REWRITER_", "ARGOCD_")) and k.upper() not in PROXY_VARIABLES
    }


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_license_id_not_in_redis(
    registries: Registries, redis_server: object, tmp_path: Path
) -> None:
    import redis

    url = redis_server.url.rsplit("/", 1)[0] + "/7"  # type: ignore[attr-defined]  # our own db
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = registries
    args = [
        "--app-slug", "my-kots-app", "--cache", url, "--ca-bundle", env.ca_bundle,
        "--insecure-registry", env.anonymous.domain, "--timeout", "3", "--deadline", "15",
    ]  # fmt: skip
    stdin = pod(env.token.image("private/app", "1.0"), env.anonymous.image("library/app", "1.0"))
    done = subprocess.run(
        [sys.executable, "-m", "rewriter", *args],
        input=stdin,
        capture_output=True,
        env={**_clean_env(), "HOME": str(tmp_path), "REWRITER_LICENSE_ID": LICENSE_ID},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    keys = list(client.scan_iter("*"))
    assert len(keys) == 2
    data = b"".join(keys) + b"".join(client.get(k) or b"" for k in keys)
    for form in _forms(LICENSE_ID):
        assert form not in data
    client.flushdb()


# -- --help ----------------------------------------------------------------------------------


def test_help_steers_secrets_off_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rewriter", "render", "--help"],
        capture_output=True,
        env=_clean_env(),
        timeout=60,
        check=True,
    )
    # Help is wrapped to 80 columns, at blanks and after hyphens: undo both.
    text = " ".join(re.sub(r"(?<=\w-)\n\s+", "", done.stdout.decode()).split())
    assert re.search(
        r"--license-id \S+ License ID for the pull secret\. Prefer REWRITER_LICENSE_ID or "
        r"--license-id-file: arguments are visible to every user of the machine\.",
        text,
    )
    assert "--license-id-file FILE Read the license ID from this file" in text
    assert re.search(
        r"--local-registry-password \S+ Password for the local registry\. Prefer "
        r"REWRITER_LOCAL_REGISTRY_PASSWORD or --local-registry-password-file\.",
        text,
    )
    assert "--probe-allow GLOB|CIDR" in text and "--probe-deny GLOB|CIDR" in text


# -- --probe-deny / --probe-allow: addresses as the resolver reads them (issue 15 §3) --------

LOOPBACK_SPELLINGS = [
    "2130706433",
    "0x7f000001",
    "017700000001",
    "0",
    "127.1",
    "[::ffff:7f00:1]",
]


@pytest.mark.parametrize(
    "spelling", [*LOOPBACK_SPELLINGS, "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "0x7f.1"]
)
@pytest.mark.parametrize("entry", ["127.*", "127.0.0.0/8", "127.0.0.1", "0x7f000001"])
def test_deny_matches_every_spelling_of_an_address(spelling: str, entry: str) -> None:
    denied = ProbeSettings(deny=(entry,))
    assert host_allowed(spelling, denied) == f"probe denied by --probe-deny {entry!r}"
    assert host_allowed(f"{spelling}:5000", denied) == f"probe denied by --probe-deny {entry!r}"
    allowed = ProbeSettings(allow=(entry,))
    assert host_allowed(spelling, allowed) is None


@pytest.mark.parametrize(
    ("host", "entry", "denied"),
    [
        ("172.17.0.1", "172.16.0.0/12", True),  # Docker's bridge
        ("172.31.255.255", "172.16.0.0/12", True),
        ("172.32.0.1", "172.16.0.0/12", False),
        ("172.15.255.255", "172.16.0.0/12", False),
        ("10.200.3.4:5000", "10.0.0.0/8", True),
        ("167772161", "10.0.0.0/8", True),  # 10.0.0.1
        ("[::ffff:10.1.2.3]", "10.0.0.0/8", True),
        ("[64:ff9b::a01:203]", "10.0.0.0/8", True),  # NAT64, /96
        ("[64:ff9b:1:a01:2:300::]", "10.0.0.0/8", True),  # NAT64 local use, /48 (RFC 6052)
        ("[64:ff9b:1::a01:203]", "10.0.0.0/8", True),  # NAT64 local use, /96
        ("11.0.0.1", "10.0.0.0/8", False),
        ("[fd12::1]", "fd00::/8", True),
        ("[fe12::1]", "fd00::/8", False),
        ("registry.example.com", "10.0.0.0/8", False),
        ("0", "127.0.0.1", True),  # 0.0.0.0 reaches this host
    ],
)
def test_deny_and_allow_cidr_blocks(host: str, entry: str, denied: bool) -> None:
    reason = f"probe denied by --probe-deny {entry!r}"
    assert host_allowed(host, ProbeSettings(deny=(entry,))) == (reason if denied else None)
    not_allowed = "probe denied: not in --probe-allow"
    assert host_allowed(host, ProbeSettings(allow=(entry,))) == (None if denied else not_allowed)


def test_the_documented_deny_example_covers_the_private_networks() -> None:
    """docs/security.md's REWRITER_PROBE_DENY example, as the environment splits it."""
    text = (ROOT / "docs" / "security.md").read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("REWRITER_PROBE_DENY=")]
    deny = ProbeSettings(deny=tuple(line.partition("=")[2].strip('"').split()))
    for host in ("10.1.2.3", "172.16.0.1", "172.17.0.1", "172.31.0.1", "192.168.1.1",
                 "127.0.0.1", "2130706433", "0", "[::1]", "[::ffff:7f00:1]", "localhost",
                 "registry.ns.svc", "[fd00::1]"):  # fmt: skip
        assert host_allowed(host, deny) is not None, host
    for host in ("quay.io", "172.32.0.1", "8.8.8.8"):
        assert host_allowed(host, deny) is None, host


@pytest.fixture
def loopback() -> Iterator[FaultServer]:
    """A public registry stand-in on 127.0.0.1 (a free port, no privileges needed)."""
    from support.registries import free_port

    server = FaultServer("127.0.0.1", free_port(), {"/v2/": status(200), MANIFEST: status(200)})
    server.start()
    yield server
    server.stop()


def _probe(registry: str, **settings: object) -> ProbeResult:
    ref = ImageRef.parse(f"{registry}/team/app:1.0")
    values: dict[str, object] = {
        "insecure_registries": frozenset({ref.registry}),
        "timeout": 2.0,
        "deadline": 10.0,
        **settings,
    }
    return probe_all([ref], ProbeSettings(**values))[ref.probe_key]  # type: ignore[arg-type]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_other_spellings_of_loopback_are_denied_before_a_connection(
    spelling: str, loopback: FaultServer
) -> None:
    registry = f"{spelling}:{loopback.port}"
    # The control: this spelling does reach the listener on 127.0.0.1.
    assert _probe(registry) == ProbeResult(Verdict.PUBLIC, "HTTP 200")
    reached = len(loopback.seen())
    assert reached >= 1

    for entry in ("127.*", "127.0.0.0/8"):
        result = _probe(registry, deny=(entry,))
        assert result == ProbeResult(UNKNOWN, f"probe denied by --probe-deny {entry!r}")
    assert len(loopback.seen()) == reached


@pytest.mark.parametrize("entry", ["127.*", "127.0.0.0/8", "127.0.0.1"])
def test_the_connected_address_is_checked_against_deny(
    entry: str, loopback: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that no deny entry names, resolving to a denied address: refused once
    connected, before a byte is sent."""
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: object, *args: object, **kwargs: object) -> object:
        return real_getaddrinfo("127.0.0.1" if host == "rebind.test" else host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    registry = f"rebind.test:{loopback.port}"

    denied = _probe(registry, deny=(entry,))

    assert denied == ProbeResult(
        UNKNOWN, f"probe denied: rebind.test is 127.0.0.1, denied by --probe-deny {entry!r}"
    )
    assert loopback.seen() == []
    # Allowed by name: the name's owner chose the address, and nothing denies it.
    assert _probe(registry, allow=("rebind.test",)).verdict is Verdict.PUBLIC
    assert _probe(registry, allow=("*.test",), deny=("10.0.0.0/8",)).verdict is Verdict.PUBLIC


def test_peer_refusal_policy() -> None:
    from rewriter.probe.policy import peer_refusal

    none = ProbeSettings()
    assert peer_refusal("a.test", 80, "127.0.0.1", none) is None
    assert peer_refusal("a.test", 80, "169.254.169.254", none) == (
        "probe denied: a.test is a cloud metadata endpoint (169.254.169.254)"
    )
    deny = ProbeSettings(deny=("172.16.0.0/12",))
    assert peer_refusal("a.test", 80, "::ffff:172.17.0.2", deny) == (
        "probe denied: a.test is ::ffff:172.17.0.2, denied by --probe-deny '172.16.0.0/12'"
    )
    allow = ProbeSettings(allow=("quay.io", "10.0.0.0/8"))
    assert peer_refusal("quay.io", 443, "1.2.3.4", allow) is None  # allowed by its name
    assert peer_refusal("10.0.0.7", 443, "10.0.0.7", allow) is None  # by its address
    assert peer_refusal("167772167", 443, "10.0.0.7", allow) is None
    assert peer_refusal("2130706433", 443, "127.0.0.1", allow) == (
        "probe denied: 2130706433 is 127.0.0.1, not in --probe-allow"
    )


# -- one reading of a URL for the policy and the transport (issue 15 §3) -----------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://127.0.0.1:5056\\@allowed.example/token",
            "token realm '127.0.0.1:5056\\\\@allowed.example': probe denied: ambiguous URL"
            " (backslash)",
        ),
        (
            "http://user:secret@allowed.example/token",
            "token realm 'allowed.example': probe denied: ambiguous URL (userinfo)",
        ),
        (
            "http://127.0.0.1:5056@allowed.example/token",
            "token realm 'allowed.example': probe denied: ambiguous URL (userinfo)",
        ),
        (
            "http://allowed.example /token",
            "token realm 'allowed.example ': probe denied: ambiguous URL (space or control",
        ),
        ("http://allowed.example\\token", "token realm 'allowed.example\\\\token': probe denied"),
    ],
)
def test_ambiguous_realms_are_refused(url: str, reason: str) -> None:
    refused = redirect_refusal(
        url, ProbeSettings(allow=("allowed.example",)), "http", "token realm"
    )
    assert refused is not None and refused.startswith(reason), refused
    assert "secret" not in refused


def test_ambiguous_realm_and_location_reach_nothing(loopback: FaultServer) -> None:
    """A realm and a redirect that urllib.parse reads as `allowed.example` and urllib3 as
    the denied loopback listener: refused with the reason, and the listener hears nothing
    more than the registry's own requests."""
    from support.registries import free_port

    sneaky = f"http://127.0.0.1:{loopback.port}\\@allowed.example"
    routes = {
        "/v2/": status(200),
        MANIFEST: redirect(f"{sneaky}{MANIFEST}", 307),
        "/v2/realm/app/manifests/1.0": status(401, bearer(f"{sneaky}/token")),
    }
    registry = FaultServer("127.0.0.2", free_port("127.0.0.2"), routes).start()
    try:
        settings = ProbeSettings(
            insecure_registries=frozenset({registry.domain}),
            deny=(f"127.0.0.1:{loopback.port}",),
            timeout=2.0,
            deadline=10.0,
        )
        refs = [ImageRef.parse(f"{registry.domain}/{name}/app:1.0") for name in ("team", "realm")]
        results = probe_all(refs, settings)
    finally:
        registry.stop()
    redirected, realm = (results[ref.probe_key] for ref in refs)
    assert redirected.verdict is UNKNOWN and realm.verdict is UNKNOWN
    assert redirected.detail.startswith("redirect to '127.0.0.1:"), redirected.detail
    # The challenge's quoted-string takes `\\@` for `@`: the realm has userinfo instead.
    assert realm.detail == "token realm 'allowed.example': probe denied: ambiguous URL (userinfo)"
    assert redirected.detail.endswith("probe denied: ambiguous URL (backslash)")
    assert loopback.seen() == []


def test_the_transport_refuses_a_url_its_parsers_disagree_on(loopback: FaultServer) -> None:
    from rewriter.probe.tls import tls_context
    from rewriter.probe.transport import ProbeDenied, Transport

    url = f"http://127.0.0.1:{loopback.port}\\@allowed.example/v2/"
    with pytest.raises(ProbeDenied, match="ambiguous URL"):
        Transport(tls_context(None)).send("GET", url, {}, 2.0)
    assert loopback.seen() == []


# -- files rewriter reads or writes (issue 15 section 2) ---------------------------------------

EXAMPLE = (ROOT / "examples" / "app.yaml").read_bytes()
EXAMPLE_LICENSE = ROOT / "examples" / "license.yaml"
OFFLINE = ["--private", "quay.io/my-org/*", "--offline", "--cache", "none"]
BOUND = 20  # seconds: every refusal below is immediate; a hang fails the test


def user_run(
    args: list[str],
    stdin: bytes | int = EXAMPLE,
    stdout: int = subprocess.PIPE,
    **popen: object,
) -> subprocess.CompletedProcess[bytes]:
    """`rewriter ARGS` as a user runs it, bounded in time, with a clean environment."""
    env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
    return subprocess.run(
        ["rewriter", *args],
        input=stdin if isinstance(stdin, bytes) else None,
        stdin=None if isinstance(stdin, bytes) else stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
        timeout=BOUND,
        check=False,
        **popen,  # type: ignore[arg-type]
    )


def assert_one_error(done: subprocess.CompletedProcess[bytes], message: str) -> None:
    """Exit 1, nothing on stdout, exactly `error: MESSAGE` on stderr (no traceback)."""
    assert (done.returncode, done.stderr.decode(), done.stdout or b"") == (
        1,
        f"error: {message}\n",
        b"",
    )


FILE_OPTIONS = {
    "--license": [],
    "--config": ["--license", str(EXAMPLE_LICENSE)],
    "--application": ["--license", str(EXAMPLE_LICENSE)],
    "--license-id-file": ["--app-slug", "my-kots-app"],
    "--local-registry-password-file": [
        "--license",
        str(EXAMPLE_LICENSE),
        "--local-registry",
        "registry.example.com/app",
        "--local-registry-username",
        "me",
    ],
    "--ca-bundle": ["--license", str(EXAMPLE_LICENSE)],
}


def special_file(kind: str, tmp_path: Path) -> tuple[str, str]:
    """(a path of that kind, how the error names it)."""
    if kind == "fifo":
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)  # no writer ever: reading it would block forever
        return str(fifo), "a FIFO (pipe)"
    if kind == "directory":
        return str(tmp_path), "a directory"
    if kind == "device":
        return "/dev/zero", "a character device"  # endless
    return "/dev/stdin", "a FIFO (pipe)"  # the manifests' pipe


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "stdin"])
@pytest.mark.parametrize("option", list(FILE_OPTIONS))
def test_options_naming_files_read_regular_files_only(
    option: str, kind: str, tmp_path: Path
) -> None:
    """A FIFO, a device, a directory or /dev/stdin is an error naming the option and the
    file, at once: never a hang, and the manifests on stdin are not swallowed (the render
    used to exit 0 with an empty stream for `--license-id-file /dev/stdin`)."""
    path, what = special_file(kind, tmp_path)
    done = user_run([*FILE_OPTIONS[option], *OFFLINE, option, path])
    assert_one_error(done, f"{option} {path}: {what}, not a regular file")


def test_dev_stdin_is_refused_when_stdin_is_a_file(tmp_path: Path) -> None:
    manifests = tmp_path / "app.yaml"
    manifests.write_bytes(EXAMPLE)
    with manifests.open("rb") as stdin:
        done = user_run(
            ["--app-slug", "my-kots-app", *OFFLINE, "--license-id-file", "/dev/stdin"],
            stdin=stdin.fileno(),
        )
    assert_one_error(
        done, "--license-id-file /dev/stdin: the standard input, not a file of its own"
    )


@pytest.mark.parametrize(
    ("option", "extra"),
    [
        ("--license", []),
        ("--config", ["--license", str(EXAMPLE_LICENSE)]),
        ("--license-id-file", ["--app-slug", "my-kots-app"]),
        ("--local-registry-password-file", FILE_OPTIONS["--local-registry-password-file"][2:]),
    ],
)
def test_files_options_name_are_capped_at_one_mib(
    option: str, extra: list[str], tmp_path: Path
) -> None:
    big = tmp_path / "big"
    license_text = EXAMPLE_LICENSE.read_bytes()
    # Exactly 1 MiB is read; one byte more is refused.
    big.write_bytes(license_text + b"#" * ((1 << 20) - len(license_text) + 1))
    args = [*extra, *OFFLINE, option, str(big)]
    if option == "--local-registry-password-file":
        args = ["--license", str(EXAMPLE_LICENSE), *args]
    assert_one_error(user_run(args), f"{option} {big}: larger than 1 MiB")
    with big.open("r+b") as file:
        file.truncate(1 << 20)
    if option == "--license":
        done = user_run(args)
        assert done.returncode == 0, done.stderr
        assert b"proxy.replicated.com/proxy/my-kots-app/" in done.stdout


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "stderr"])
def test_log_file_is_a_regular_file_or_a_new_one(kind: str, tmp_path: Path) -> None:
    """A FIFO without a reader fails at once (never waits, outside --deadline); a device
    (`/dev/full`, `/dev/stderr` on a pipe), a directory is refused."""
    if kind == "fifo":
        path, what = special_file("fifo", tmp_path)
    elif kind == "device":
        path, what = "/dev/full", "a character device"
    elif kind == "directory":
        path, what = str(tmp_path), "a directory"
    else:
        path, what = "/dev/stderr", "a FIFO (pipe)"
    done = user_run(["--license", str(EXAMPLE_LICENSE), *OFFLINE, "--log-file", path])
    assert_one_error(done, f"--log-file {path}: {what}, not a regular file")


def test_log_file_is_never_the_output(tmp_path: Path) -> None:
    """`--log-file out.yaml > out.yaml` (or /dev/stdout on a file) would mix warnings into
    the manifests."""
    out = tmp_path / "out.yaml"
    for log in (str(out), "/dev/stdout"):
        with out.open("wb") as stdout:
            done = user_run(
                ["--license", str(EXAMPLE_LICENSE), *OFFLINE, "--log-file", log],
                stdout=stdout.fileno(),
            )
        assert (done.returncode, done.stderr.decode(), out.read_bytes()) == (
            1,
            f"error: --log-file {log}: the file stdout writes to (the manifests)\n",
            b"",
        )


def test_a_new_log_file_is_private(tmp_path: Path) -> None:
    log = tmp_path / "rewriter.log"
    done = user_run(
        ["--license", str(EXAMPLE_LICENSE), *OFFLINE, "--log-file", str(log)],
        preexec_fn=lambda: os.umask(0),
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text().startswith("warning: postgres:16: offline")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root only), unmounted afterwards."""
    where = tmp_path / "tmpfs"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def test_a_log_write_error_is_one_error_line(small_tmpfs: Path) -> None:
    """The log on a full disk: the command fails with one `error:` line on stderr (Helm 4
    users would lose their diagnostics otherwise), never a traceback."""
    log = small_tmpfs / "rewriter.log"
    log.touch()
    with (small_tmpfs / "filler").open("wb") as filler, contextlib.suppress(OSError):
        filler.write(b"\0" * (1 << 20))
    done = user_run(["--license", str(EXAMPLE_LICENSE), *OFFLINE, "--log-file", str(log)])
    lines = done.stderr.decode().splitlines()
    assert (done.returncode, done.stdout) == (1, b"")
    assert lines[-1] == f"error: cannot write log file {log}: No space left on device"
    assert [line for line in lines if not line.startswith("warning: ")] == [lines[-1]]


def test_midstream_pull_secret_is_private(tmp_path: Path) -> None:
    """pull-secret.yaml holds the license ID: 0600 whatever the umask; the kustomization
    itself stays readable."""
    if shutil.which("kubectl") is None and shutil.which("kustomize") is None:
        pytest.skip("needs kubectl or kustomize")
    (tmp_path / "base.yaml").write_bytes(EXAMPLE)
    out = tmp_path / "out"
    done = user_run(
        ["kustomization", "--license", str(EXAMPLE_LICENSE), *OFFLINE,
         "--resources", str(tmp_path / "base.yaml"), "--output-dir", str(out)],
        stdin=b"",
        preexec_fn=lambda: os.umask(0),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ".dockerconfigjson" in (out / "pull-secret.yaml").read_text()
    assert stat.S_IMODE((out / "pull-secret.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "kustomization.yaml").stat().st_mode) == 0o666


@pytest.mark.parametrize(
    ("option", "path", "what"),
    [
        ("license", "/dev/zero", "a character device"),  # memory without bound, once
        ("license-id-file", "/dev/stdin", "a FIFO (pipe)"),
        ("log-file", "/dev/stdout", "a FIFO (pipe)"),  # lines injected into the manifests
    ],
)
def test_a_config_file_naming_special_files_is_refused_too(
    option: str, path: str, what: str, tmp_path: Path
) -> None:
    config = tmp_path / ".rewriter.yaml"
    config.write_text(f"options:\n  {option}: {path}\n")
    args = ["--app-slug", "my-kots-app", *OFFLINE, "--config", str(config)]
    assert_one_error(user_run(args), f"--{option} {path}: {what}, not a regular file")
