"""Real registries on loopback for the probe tests (and anyone else's end-to-end tests).

`start_registries()` brings up, on distinct 127.x.y.z addresses so that image names carry
no port:

- `anonymous`: Debian's `docker-registry` (distribution 2.8), no auth, plain HTTP on port
  80 (probed as an `--insecure-registry`);
- `basic`: the same behind htpasswd (a Basic challenge), HTTPS on 443;
- `token`: the same behind token auth (a Bearer challenge), HTTPS on 443, with
  `tests/support/tokenserver.py` as its realm (HTTPS on port 5001 of the same address);

with a test CA made by openssl (its bundle is `Registries.ca_bundle`), and pushes a tiny
OCI image (built here, digests computed here) with skopeo:

| image                                | registry  | probe says      |
|--------------------------------------|-----------|-----------------|
| `<anonymous>/library/app:1.0`        | anonymous | public          |
| `<anonymous>/team/multi:multi` (index) | anonymous | public        |
| `<basic>/team/secret:1.0`            | basic     | private (Basic) |
| `<token>/public/app:1.0`             | token     | public          |
| `<token>/private/app:1.0`            | token     | private (Bearer)|
| `<token>/denied/app:1.0`             | token     | private (realm) |

Every server is stopped by `Registries.stop()`. Nothing here touches the internet, the
real home directory or a non-loopback address.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from support.tokenserver import TokenPolicy, TokenServer

TOOLS = ("docker-registry", "skopeo", "redis-server", "openssl")
USER, PASSWORD = "pusher", "s3cret-pass"
TOKEN_PORT = 5001
_ACCESS_LINE = re.compile(r'"(?:GET|HEAD|POST|PUT|PATCH|DELETE) /v2/')


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def can_bind_privileged() -> bool:
    """Whether docker-registry may listen on ports 80 and 443 here."""
    return os.geteuid() == 0 or _unprivileged_port_start() <= 80


def _unprivileged_port_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


# -- addresses ----------------------------------------------------------------------------


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_hosts(count: int, ports: tuple[int, ...] = (80, 443, TOKEN_PORT)) -> list[str]:
    """`count` loopback addresses 127.a.b.1.. with every port free on each; random a.b so
    that test runs (and other suites) side by side do not collide."""
    rng = random.Random()
    for _ in range(100):
        a, b = rng.randint(16, 250), rng.randint(1, 250)
        hosts = [f"127.{a}.{b}.{i}" for i in range(1, count + 1)]
        if all(_bindable(host, port) for host in hosts for port in ports):
            return hosts
    raise RuntimeError("no free loopback addresses")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- certificates -------------------------------------------------------------------------


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a server process: asked first, killed when it does not stop in 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token_cert: Path  # self-signed RSA, signs the JWTs
    token_key: Path


def make_pki(directory: Path, ips: list[str]) -> Pki:
    """A CA, a server certificate for `ips`, and a token signing certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=rewriter test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=rewriter test registry",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=" + ",".join(f"IP:{ip}" for ip in ips) + "\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key",
        "-out", "token.crt", "-days", "2", "-subj", "/CN=rewriter test token issuer",
        cwd=directory,
    )  # fmt: skip
    return Pki(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        token_cert=directory / "token.crt",
        token_key=directory / "token.key",
    )


# -- an OCI layout, by hand ----------------------------------------------------------------


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def write_oci_layout(layout: Path) -> dict[str, str]:
    """An OCI layout with tag `1.0` (an image manifest) and `multi` (an image index over
    it). Returns tag -> manifest digest."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        content = b"hello from the rewriter probe tests\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
    diff_id = "sha256:" + hashlib.sha256(tar_bytes.getvalue()).hexdigest()
    layer = _blob(layout, gzip.compress(tar_bytes.getvalue(), mtime=0))
    config = _blob(
        layout,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
        ).encode(),
    )
    manifest_media = "application/vnd.oci.image.manifest.v1+json"
    manifest = _blob(
        layout,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": manifest_media,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            }
        ).encode(),
    )
    index_media = "application/vnd.oci.image.index.v1+json"
    platform = {"architecture": "amd64", "os": "linux"}
    image_index = _blob(
        layout,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": index_media,
                "manifests": [{"mediaType": manifest_media, **manifest, "platform": platform}],
            }
        ).encode(),
    )
    ref = "org.opencontainers.image.ref.name"
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": index_media,
                "manifests": [
                    {"mediaType": manifest_media, **manifest, "annotations": {ref: "1.0"}},
                    {"mediaType": index_media, **image_index, "annotations": {ref: "multi"}},
                ],
            }
        )
    )
    return {"1.0": str(manifest["digest"]), "multi": str(image_index["digest"])}


# -- docker-registry ---------------------------------------------------------------------


@dataclass
class Registry:
    """One docker-registry process; `host` is its address and also its image domain."""

    name: str
    host: str
    port: int
    scheme: str
    access_log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def domain(self) -> str:
        return self.host  # ports 80/443: the image name carries none

    def image(self, repository: str, tag: str) -> str:
        return f"{self.domain}/{repository}:{tag}"

    def requests(self) -> int:
        """How many /v2/ requests the registry has answered (its access log)."""
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return sum(1 for line in text.splitlines() if _ACCESS_LINE.search(line))

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)


def start_registry(
    name: str,
    host: str,
    workdir: Path,
    pki: Pki | None,
    auth: dict[str, object] | None,
    lean: bool = False,
) -> Registry:
    """Start docker-registry on host:443 with TLS (pki) or host:80 without, and wait for it.

    `lean` is for the benchmark, whose registries stand in for remote ones on the two
    cores that also run the program measured: errors only in the log (the proxies count
    the requests), one Go processor and a garbage collection every fourfold heap growth
    (GOGC=400). A 401 then costs ~1 ms of CPU instead of ~2."""
    directory = workdir / name
    (directory / "storage").mkdir(parents=True, exist_ok=True)
    port = 443 if pki else 80
    http: dict[str, object] = {"addr": f"{host}:{port}", "secret": secrets.token_hex(16)}
    if pki:
        http["tls"] = {"certificate": str(pki.server_cert), "key": str(pki.server_key)}
    config: dict[str, object] = {
        "version": 0.1,
        "log": {
            "level": "error" if lean else "info",
            "formatter": "text",
            "accesslog": {"disabled": lean},
        },
        "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}},
        "http": http,
        "health": {"storagedriver": {"enabled": False}},
    }
    if auth:
        config["auth"] = auth
    config_path = directory / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    registry = Registry(name, host, port, "https" if pki else "http", directory / "access.log")
    with open(registry.access_log, "wb") as out, open(directory / "registry.log", "wb") as err:
        registry.process = subprocess.Popen(
            ["docker-registry", "serve", str(config_path)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(directory),
                **({"GOMAXPROCS": "1", "GOGC": "400"} if lean else {}),
            },
        )
    verify: str | bool = str(pki.ca_cert) if pki else False
    _wait_http(f"{registry.scheme}://{host}/v2/", verify, registry, directory / "registry.log")
    return registry


def _wait_http(url: str, verify: str | bool, registry: Registry, log: Path) -> None:
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if registry.process is not None and registry.process.poll() is not None:
            raise RuntimeError(f"{registry.name} registry exited:\n{log.read_text()}")
        with contextlib.suppress(requests.RequestException):
            if session.get(url, verify=verify, timeout=1).status_code in (200, 401):
                return
        time.sleep(0.05)
    raise RuntimeError(f"{registry.name} registry did not come up:\n{log.read_text()}")


# -- skopeo ------------------------------------------------------------------------------


def skopeo_copy(
    layout: Path,
    tag: str,
    destination: str,
    home: Path,
    cert_dir: Path | None = None,
    creds: str | None = None,
) -> None:
    """Push `layout:tag` to `destination` (docker://...), never reading the real home."""
    home.mkdir(parents=True, exist_ok=True)
    registries_conf = home / "registries.conf"
    registries_conf.write_text("")  # no mirrors, no search registries
    args = ["skopeo", "--insecure-policy", "copy", "--all", "--retry-times", "2"]
    if cert_dir is not None:
        args += ["--dest-cert-dir", str(cert_dir)]
    else:
        args += ["--dest-tls-verify=false"]  # plain HTTP registry
    args += ["--dest-creds", creds] if creds else ["--dest-no-creds"]
    args += [f"oci:{layout}:{tag}", f"docker://{destination}"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "REGISTRY_AUTH_FILE": str(home / "auth.json"),
        "CONTAINERS_REGISTRIES_CONF": str(registries_conf),
    }
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"skopeo copy to {destination} failed:\n{result.stderr}")


# -- the whole set -----------------------------------------------------------------------


@dataclass
class Registries:
    workdir: Path
    ca_bundle: str
    anonymous: Registry
    basic: Registry
    token: Registry
    token_server: TokenServer
    unused_host: str  # an address where nothing listens
    digests: dict[str, str]  # tag -> manifest digest of the pushed test image

    @property
    def insecure(self) -> frozenset[str]:
        return frozenset({self.anonymous.domain, self.unused_host})

    def registries(self) -> list[Registry]:
        return [self.anonymous, self.basic, self.token]

    def requests(self) -> int:
        """Every request any registry or the token server has answered so far."""
        with self.token_server.log.lock:
            tokens = len(self.token_server.log.anonymous) + len(self.token_server.log.authenticated)
        return sum(registry.requests() for registry in self.registries()) + tokens

    def public_images(self) -> list[str]:
        return [
            self.anonymous.image("library/app", "1.0"),
            self.anonymous.image("team/multi", "multi"),
            self.token.image("public/app", "1.0"),
        ]

    def stop(self) -> None:
        for registry in self.registries():
            registry.stop()
        self.token_server.stop()


def start_registries(workdir: Path) -> Registries:
    """Bring everything up (about 2 s); the caller must call `stop()`."""
    anonymous_host, basic_host, token_host, unused_host = pick_hosts(4)
    pki = make_pki(workdir / "pki", [anonymous_host, basic_host, token_host])
    cert_dir = workdir / "certs.d"
    cert_dir.mkdir(exist_ok=True)
    shutil.copy(pki.ca_cert, cert_dir / "ca.crt")

    import bcrypt  # only the htpasswd registry needs it

    htpasswd = workdir / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{USER}:{hashed}\n")

    service, issuer = "rewriter-test-registry", "rewriter-test-issuer"
    token_server = TokenServer(
        token_host,
        TOKEN_PORT,
        TokenPolicy(
            issuer=issuer,
            service=service,
            users={USER: PASSWORD},
            public=frozenset({"public/app"}),
            denied_prefixes=("denied/",),
        ),
        pki.token_key.read_bytes(),
        pki.token_cert.read_bytes(),
        str(pki.server_cert),
        str(pki.server_key),
    ).start()

    started: list[Registry] = []
    try:
        anonymous = start_registry("anonymous", anonymous_host, workdir, None, None)
        started.append(anonymous)
        basic = start_registry(
            "basic",
            basic_host,
            workdir,
            pki,
            {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}},
        )
        started.append(basic)
        token = start_registry(
            "token",
            token_host,
            workdir,
            pki,
            {
                "token": {
                    "realm": token_server.realm,
                    "service": service,
                    "issuer": issuer,
                    "rootcertbundle": str(pki.token_cert),
                }
            },
        )
        started.append(token)

        layout = workdir / "layout"
        digests = write_oci_layout(layout)
        home = workdir / "skopeo-home"
        creds = f"{USER}:{PASSWORD}"
        pushes = [
            ("1.0", anonymous.image("library/app", "1.0"), None, None),
            ("multi", anonymous.image("team/multi", "multi"), None, None),
            ("1.0", basic.image("team/secret", "1.0"), cert_dir, creds),
            ("1.0", token.image("public/app", "1.0"), cert_dir, creds),
            ("1.0", token.image("private/app", "1.0"), cert_dir, creds),
            ("1.0", token.image("denied/app", "1.0"), cert_dir, creds),
        ]
        errors: list[BaseException] = []

        def push(tag: str, dest: str, certs: Path | None, login: str | None) -> None:
            try:
                skopeo_copy(layout, tag, dest, home / dest.replace("/", "_"), certs, login)
            except BaseException as exc:  # re-raised below, in the calling thread
                errors.append(exc)

        threads = [threading.Thread(target=push, args=item) for item in pushes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    except BaseException:
        for registry in started:
            registry.stop()
        token_server.stop()
        raise
    return Registries(
        workdir=workdir,
        ca_bundle=str(pki.ca_cert),
        anonymous=anonymous,
        basic=basic,
        token=token,
        token_server=token_server,
        unused_host=unused_host,
        digests=digests,
    )


# -- a stand-in for answers a real registry cannot be made to give ------------------------


@dataclass
class Route:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    body: bytes = b""
    authorized: Route | None = None  # the answer instead when Authorization is sent


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    connection: int = 0  # the client's port: one per connection it opened


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler sleeping for a timeout test must not block stop()
    request_queue_size = 128  # the default backlog of 5 drops parallel probes' SYNs


class StubRegistry:
    """Plain HTTP on (host, port), answering from a routing table keyed by path (query
    string ignored); other paths get `default` (404). Records every request it sees."""

    def __init__(
        self, host: str, port: int, routes: dict[str, Route], default: Route | None = None
    ) -> None:
        self.routes = routes
        self.default = default or Route(404)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as registries do

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                path = self.path.split("?", 1)[0]
                seen = Seen(
                    self.command, self.path, dict(self.headers.items()), self.client_address[1]
                )
                with stub._lock:
                    stub.seen.append(seen)
                route = stub.routes.get(path, stub.default)
                if route.authorized is not None and self.headers.get("Authorization"):
                    route = route.authorized
                if route.delay:
                    time.sleep(route.delay)
                try:
                    self.send_response(route.status)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(route.body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            do_GET = do_HEAD = _answer

        self._httpd = _Server((host, port), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.host, self.port = host, port

    @property
    def domain(self) -> str:
        return self.host if self.port == 80 else f"{self.host}:{self.port}"

    def start(self) -> StubRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)


@contextlib.contextmanager
def stub_registry(
    routes: dict[str, Route], port: int = 0, default: Route | None = None
) -> Iterator[StubRegistry]:
    """A started stub on a fresh loopback address (`port` 0: a random one)."""
    host = pick_hosts(1, ports=(port,) if port else ())[0]
    stub = StubRegistry(host, port or free_port(host), routes, default).start()
    try:
        yield stub
    finally:
        stub.stop()


# -- redis-server --------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _terminate(self.process)


def start_redis(workdir: Path, password: str | None = None) -> RedisServer:
    """redis-server on a free loopback port, no persistence, until `stop()`; with
    `password`, one that requires it (`--requirepass`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [
                "redis-server", "--bind", "127.0.0.1", "--port", str(port),
                "--save", "", "--appendonly", "no", "--dir", str(workdir),
                "--protected-mode", "yes",
                *(["--requirepass", password] if password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        server = RedisServer(port, process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):  # up, and answering
                    return server
            time.sleep(0.05)
        server.stop()  # lost a race for the port: try another
    raise RuntimeError("redis-server did not start")
