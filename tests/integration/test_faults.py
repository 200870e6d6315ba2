"""Failing registries, end to end through the command line: whatever a registry does,
the render finishes within --deadline plus one second, classifies the image per
--on-probe-error, and caches nothing it could not classify.

Each fault is a raw-socket stand-in (tests/support/faultserver.py) on its own loopback address,
so image names carry no port: plain HTTP on port 80 (probed as an --insecure-registry)
or TLS on 443. The per-status answers of well-behaved stubs are covered in-process by
tests/integration/test_probe_registry.py; this module is about what only a misbehaving peer can do,
and about the wall-clock bound of the whole process.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.faultserver import (
    Behaviour,
    FaultServer,
    answer_on_connect,
    close,
    drip,
    endless,
    hang,
    make_tls,
    raw,
    redirect,
    reset,
    status,
    with_token,
)
from support.helpers import shop_deployment
from support.registries import pick_hosts

# Start-up counts against the deadline (requests-cache alone imports in 1-2 s on a busy
# two-core machine): the quick faults are classified under a long one (quick_scan).
DEADLINE = 2.0
BOUND = DEADLINE + 1.0  # what the issue promises: --deadline plus one second
MANIFEST = "/v2/team/app/manifests/1.0"
UNKNOWN, PUBLIC, PRIVATE, MISSING = "unknown", "public", "private", "missing"


def bearer(realm: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="{realm}",service="faults"'}


def ok_registry(manifest: Behaviour) -> Callable[[str], dict[str, Behaviour]]:
    return lambda host: {"/v2/": status(200), MANIFEST: manifest}


def realm_registry(realm_answer: Behaviour) -> Callable[[str], dict[str, Behaviour]]:
    """/v2/ challenges to its own /token, which misbehaves."""
    return lambda host: {
        "/v2/": status(401, bearer(f"http://{host}/token")),
        "/token": realm_answer,
        MANIFEST: with_token(status(200), status(401, bearer(f"http://{host}/token"))),
    }


@dataclass(frozen=True)
class Fault:
    name: str
    routes: Callable[[str], dict[str, Behaviour]]
    verdict: str
    detail: str  # a regular expression the scan's reason must contain
    tls: str | None = None  # None: plain HTTP on 80; "good" / "wrong-ca": TLS on 443
    on_connect: Behaviour | None = None
    plain_on_443: bool = False  # plain HTTP where TLS is expected
    hangs: bool = False  # only the deadline ends it

    @property
    def port(self) -> int:
        return 443 if self.tls or self.plain_on_443 else 80


TOO_MANY_HEADERS = (
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n"
)
LOOP_302 = redirect(MANIFEST)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

FAULTS = [
    # hangs: the peer accepts and then says nothing, or next to nothing
    Fault("hang", lambda h: {"/v2/": hang()}, UNKNOWN, "deadline exceeded", hangs=True),
    Fault("hang before any byte of TLS", lambda h: {}, UNKNOWN, "deadline exceeded",
          tls=None, on_connect=hang(), plain_on_443=True, hangs=True),
    Fault("slow drip", lambda h: {"/v2/": drip()}, UNKNOWN, "deadline exceeded", hangs=True),
    Fault("manifest hangs", ok_registry(hang()), UNKNOWN, "deadline exceeded", hangs=True),
    # broken connections and non-HTTP answers
    Fault("connection reset", lambda h: {"/v2/": reset()}, UNKNOWN, "connection reset"),
    Fault("closed without answer", lambda h: {"/v2/": close()}, UNKNOWN,
          "connection closed by the registry"),
    Fault("not HTTP", lambda h: {"/v2/": raw(b"SSH-2.0-OpenSSH_9.6\r\n")}, UNKNOWN,
          "not an HTTP answer"),
    Fault("200 header lines", lambda h: {"/v2/": raw(TOO_MANY_HEADERS)}, UNKNOWN,
          "malformed HTTP answer"),
    # server errors and rate limits: never private, never waited on
    Fault("500", ok_registry(status(500)), UNKNOWN, "HTTP 500"),
    Fault("502", ok_registry(status(502)), UNKNOWN, "HTTP 502"),
    Fault("503 on /v2/", lambda h: {"/v2/": status(503)}, UNKNOWN, r"HTTP 503 on /v2/"),
    Fault("429 Retry-After an hour", ok_registry(status(429, {"Retry-After": "3600"})),
          UNKNOWN, "HTTP 429"),
    Fault("429 Retry-After on /v2/", lambda h: {"/v2/": status(429, {"Retry-After": "86400"})},
          UNKNOWN, "HTTP 429 on /v2/"),
    # challenges: a 401 is "private" whatever its header says (SPEC section 4)
    Fault("garbage WWW-Authenticate",
          lambda h: {"/v2/": status(401, {"WWW-Authenticate": '\x01=,,"Bearer realm="'}),
                     MANIFEST: status(401, {"WWW-Authenticate": ",,, =x\"\\"})},
          PRIVATE, "HTTP 401"),
    Fault("missing WWW-Authenticate", lambda h: {"/v2/": status(401), MANIFEST: status(401)},
          PRIVATE, "HTTP 401"),
    Fault("unreadable realm URL",
          lambda h: {"/v2/": status(401, bearer("http://[::1/token"))}, UNKNOWN, "invalid URL"),
    # token realms that misbehave
    Fault("realm never answers", realm_registry(hang()), UNKNOWN, "deadline exceeded",
          hangs=True),
    Fault("realm drips", realm_registry(drip(200, {"Content-Type": "application/json"})),
          UNKNOWN, "deadline exceeded", hangs=True),
    Fault("realm sends an endless token", realm_registry(endless(200)), UNKNOWN,
          "token realm answered more than 1 MiB"),
    Fault("realm port closed",
          lambda h: {"/v2/": status(401, bearer(f"http://{h}:1/token"))}, UNKNOWN,
          "connection refused"),
    # redirects
    Fault("manifest redirect loop", ok_registry(LOOP_302), UNKNOWN, "too many redirects"),
    Fault("/v2/ redirect loop", lambda h: {"/v2/": redirect("/v2/")}, UNKNOWN,
          "too many redirects"),
    # huge bodies: never read, so they cost nothing
    Fault("endless /v2/ body", lambda h: {"/v2/": endless(200), MANIFEST: status(200)},
          PUBLIC, "HTTP 200"),
    Fault("endless body after HEAD", ok_registry(endless(200)), PUBLIC, "HTTP 200"),
    Fault("endless redirect body",
          lambda h: {"/v2/": status(200), MANIFEST: endless(302, {"Location": "/v2/elsewhere"}),
                     "/v2/elsewhere": status(200)},
          PUBLIC, "HTTP 200"),
    Fault("endless 404 body", ok_registry(endless(404)), MISSING, "HTTP 404"),
    # TLS
    Fault("certificate from another CA", ok_registry(status(200)), UNKNOWN,
          "TLS error: certificate verify failed", tls="wrong-ca"),
    Fault("certificate for another address", ok_registry(status(200)), UNKNOWN,
          "TLS error: certificate verify failed", tls="wrong-name"),
    Fault("plain HTTP on the TLS port", lambda h: {}, UNKNOWN, "TLS error", plain_on_443=True,
          on_connect=answer_on_connect(BAD_REQUEST)),
    Fault("TLS fine, manifest 503", ok_registry(status(503)), UNKNOWN, "HTTP 503", tls="good"),
]  # fmt: skip


@dataclass
class Stand:
    fault: Fault
    server: FaultServer
    image: str


@dataclass
class Faults:
    stands: dict[str, Stand]
    ca_bundle: str
    insecure: list[str]

    def images(self, names: list[str] | None = None) -> list[str]:
        return [s.image for n, s in self.stands.items() if names is None or n in names]


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    pytest.importorskip("cryptography")
    if os.geteuid() != 0 and not _low_ports():
        pytest.skip("needs to bind ports 80 and 443 on loopback (root, or a low port start)")
    hosts = pick_hosts(len(FAULTS), ports=(80, 443))
    tls = make_tls(tmp_path_factory.mktemp("fault-tls"), hosts)
    stands: dict[str, Stand] = {}
    try:
        for fault, host in zip(FAULTS, hosts, strict=True):
            context = {
                "good": tls.server, "wrong-ca": tls.wrong_ca, "wrong-name": tls.wrong_name, None: None
            }[fault.tls]  # fmt: skip
            server = FaultServer(
                host, fault.port, fault.routes(host), tls=context, on_connect=fault.on_connect
            ).start()
            stands[fault.name] = Stand(fault, server, f"{host}/team/app:1.0")
        insecure = [s.server.host for s in stands.values() if s.fault.port == 80]
        yield Faults(stands, str(tls.ca_cert), insecure)
    finally:
        for stand in stands.values():
            stand.server.stop()


def _low_ports() -> bool:
    from support.registries import can_bind_privileged

    return can_bind_privileged()


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str
    elapsed: float


def command(
    env: Faults, workdir: Path, *extra: str, subcommand: tuple[str, ...] = ()
) -> dict[str, object]:
    args = [
        *subcommand,
        *("--app-slug", "my-kots-app"),
        *("--cache", str(workdir / "probes.sqlite")),
        *("--ca-bundle", env.ca_bundle),
        *("--timeout", "10", "--deadline", str(DEADLINE)),  # the deadline, not the timeout
        *[arg for host in env.insecure for arg in ("--insecure-registry", host)],
        *extra,
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REWRITER_", "ARGOCD_"))}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        clean.pop(name, None)
        clean.pop(name.lower(), None)
    clean.update(
        HOME=str(workdir / "home"),
        XDG_CACHE_HOME=str(workdir / "xdg"),
        REWRITER_LICENSE_ID="fault-test-license",
    )
    return {"args": [sys.executable, "-m", "rewriter", *args], "env": clean, "cwd": workdir}


def run_all(jobs: dict[str, tuple[dict[str, object], bytes]]) -> dict[str, Run]:
    """Start every job at once; each one's own wall time, from start to exit."""
    runs: dict[str, Run] = {}

    def one(name: str, popen: dict[str, object], stdin: bytes) -> None:
        started = time.monotonic()
        process = subprocess.Popen(
            **popen,  # type: ignore[call-overload]
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = process.communicate(stdin, timeout=60)
        runs[name] = Run(process.returncode, out, err.decode(), time.monotonic() - started)

    threads = [threading.Thread(target=one, args=(n, *job)) for n, job in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs


def stored_hosts(cache: Path) -> set[str]:
    """The hosts of every answer in a SQLite probe cache."""
    if not cache.exists():
        return set()
    with sqlite3.connect(cache) as db:
        values = [value for (value,) in db.execute("SELECT value FROM responses")]
    return {str(urlsplit(json.loads(value)["url"]).hostname) for value in values}


# -- every fault in one scan ---------------------------------------------------------------


@dataclass
class Scan:
    run: Run
    rows: dict[str, dict[str, object]]  # image -> scan row
    cache: Path


def scan_of(faults: Faults, workdir: Path, names: list[str], deadline: float) -> Scan:
    popen = command(faults, workdir, subcommand=("scan", "--format", "json"))
    args: list[str] = popen["args"]  # type: ignore[assignment]
    args[args.index("--deadline") + 1] = str(deadline)
    result = run_all({"scan": (popen, shop_deployment(*faults.images(names)))})["scan"]
    assert result.code == 0, result.stderr
    rows = {str(row["image"]): row for row in json.loads(result.stdout)["images"]}
    return Scan(result, rows, workdir / "probes.sqlite")


@pytest.fixture(scope="module")
def scan(faults: Faults, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """Every fault at once, under the short deadline."""
    return scan_of(faults, tmp_path_factory.mktemp("scan"), list(faults.stands), DEADLINE)


@pytest.fixture(scope="module")
def quick_scan(faults: Faults, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """The faults that do not hang, under a long deadline: each gets its own answer
    however slowly the machine starts Python, and the time shows nothing waits."""
    quick = [name for name, stand in faults.stands.items() if not stand.fault.hangs]
    return scan_of(faults, tmp_path_factory.mktemp("quick-scan"), quick, 30)


def test_all_faults_at_once_within_the_deadline(faults: Faults, scan: Scan) -> None:
    assert scan.run.elapsed < BOUND, f"{scan.run.elapsed:.2f}s"
    assert "Traceback" not in scan.run.stderr
    for stand in faults.stands.values():
        row = scan.rows[stand.image]
        # Its own answer, or (on a machine slow to start Python) no answer in time.
        if row["reason"] != "probe failed: deadline exceeded; --on-probe-error=proxy":
            assert re.search(stand.fault.detail, str(row["reason"])), row["reason"]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_classified(fault: Fault, faults: Faults, scan: Scan, quick_scan: Scan) -> None:
    row = (scan if fault.hangs else quick_scan).rows[faults.stands[fault.name].image]
    assert row["probe"] == fault.verdict, row["reason"]
    assert re.search(fault.detail, str(row["reason"])), row["reason"]
    if fault.verdict == UNKNOWN:
        assert str(row["reason"]).endswith("; --on-probe-error=proxy")
        assert row["action"] == "proxy"


def test_nothing_unknown_is_cached(faults: Faults, scan: Scan, quick_scan: Scan) -> None:
    answered = {
        stand.server.host for stand in faults.stands.values() if stand.fault.verdict != UNKNOWN
    }
    assert stored_hosts(quick_scan.cache) == answered
    assert stored_hosts(scan.cache) <= answered


def test_fast_faults_cost_no_waiting(quick_scan: Scan) -> None:
    """Without the hangs, a render with a long deadline is over at once: no Retry-After
    is waited on, no body is read, nothing is retried."""
    assert quick_scan.run.elapsed < 10.0, f"{quick_scan.run.elapsed:.2f}s"  # a wait: 30 s


# -- --on-probe-error, all three, on faults ---------------------------------------------------


def test_on_probe_error_applies_to_faults(faults: Faults, tmp_path: Path) -> None:
    names = ["hang", "slow drip", "connection reset", "503 on /v2/", "realm never answers"]
    failing = faults.images(names)
    stdin = shop_deployment(*failing)
    jobs = {}
    for policy in ("proxy", "keep", "fail"):
        workdir = tmp_path / policy
        workdir.mkdir()
        jobs[policy] = (command(faults, workdir, "--on-probe-error", policy), stdin)

    # One after the other: three start-ups at once on two cores would time the scheduler.
    runs = {policy: run_all({policy: job})[policy] for policy, job in jobs.items()}

    for policy, result in runs.items():
        assert result.elapsed < BOUND, f"{policy}: {result.elapsed:.2f}s"
        assert "Traceback" not in result.stderr
        assert stored_hosts(tmp_path / policy / "probes.sqlite") == set()
    for policy in ("proxy", "keep"):
        result = runs[policy]
        assert result.code == 0, result.stderr
        text = result.stdout.decode()
        for image in failing:
            prefix = "proxy.replicated.com/proxy/my-kots-app/" if policy == "proxy" else ""
            assert f"image: {prefix}{image}\n" in text
            assert image in result.stderr  # warned
    failed = runs["fail"]
    assert failed.code == 1
    assert failed.stdout == b""
    assert "error:" in failed.stderr
    assert any(image in failed.stderr for image in failing)
