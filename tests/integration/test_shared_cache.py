"""The probe cache under load and when it breaks, through the command line.

- 8 renders at once on one SQLite file, and on one Redis: all succeed with the same
  bytes, nobody sees "database is locked", and the cache ends up complete (an offline
  render afterwards gives the same bytes).
- A cache that cannot be used (corrupt, truncated, bit-rotten, read-only, full disk;
  Redis unreachable, holding garbage, killed or frozen mid-render): a warning on stderr
  and the same output as a render without any cache.

The registry is a loopback stand-in (tests/support/faultserver.py) that answers at once, so that
the figures are the cache's. Renders are CLI processes, except for the SQLite failure
modes beyond three, which go through the same calls in-process (start-ups are what make
this module slow on two cores).
Full disks and read-only directories are tmpfs mounts (root can write anywhere else);
without the right to mount, those cases are skipped, saying so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.faultserver import Behaviour, Connection, FaultServer, Request, status
from support.helpers import probe_cached, shop_deployment
from support.registries import RedisServer, pick_hosts, start_redis

from rewriter.probe.policy import ProbeSettings
from rewriter.probe.verdict import ProbeResult, Verdict
from rewriter.reference import ImageRef

CONCURRENT = 8
PUBLIC = [f"pub{i}/app:1.0" for i in range(12)]
PRIVATE = [f"priv{i}/app:1.0" for i in range(12)]
PROXY = "proxy.replicated.com/proxy/my-kots-app/"


def by_repository(delay: float = 0.0) -> Behaviour:
    """Repositories named priv* are private (a Basic challenge), the others public."""

    def answer(conn: Connection, request: Request) -> None:
        if delay and conn.stopped.wait(delay):
            return
        if "/priv" in request.path:
            conn.respond(401, {"WWW-Authenticate": 'Basic realm="stand-in"'})
        else:
            conn.respond(200, {"Docker-Content-Digest": "sha256:" + "0" * 64})

    return answer


@dataclass
class Stand:
    fast: FaultServer
    slow: FaultServer  # 0.3 s per manifest: renders that last long enough to break things

    def images(self, server: FaultServer | None = None) -> list[str]:
        host = (server or self.fast).host
        return [f"{host}/{name}" for name in PUBLIC + PRIVATE]


@pytest.fixture(scope="module")
def stand() -> Iterator[Stand]:
    from support.registries import can_bind_privileged

    if not can_bind_privileged():
        pytest.skip("needs to bind port 80 on loopback (root, or a low port start)")
    fast_host, slow_host = pick_hosts(2, ports=(80, 443))
    fast = FaultServer(fast_host, 80, {"/v2/": status(200)}, default=by_repository()).start()
    slow = FaultServer(slow_host, 80, {"/v2/": status(200)}, default=by_repository(0.3)).start()
    try:
        yield Stand(fast, slow)
    finally:
        fast.stop()
        slow.stop()


def start(
    workdir: Path, cache: str, stdin: bytes, *extra: str, insecure: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """`python -m rewriter --cache CACHE ...` in `workdir`, stdin from a file."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "stdin.yaml").write_bytes(stdin)
    args = ["--app-slug", "my-kots-app", "--cache", cache, "--deadline", "30", *extra]
    for host in insecure:
        args += ["--insecure-registry", host]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REWRITER_", "ARGOCD_"))}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        env.pop(name, None)
        env.pop(name.lower(), None)
    env.update(HOME=str(workdir), XDG_CACHE_HOME=str(workdir / "xdg"), REWRITER_LICENSE_ID="L")
    with open(workdir / "stdin.yaml", "rb") as source:
        return subprocess.Popen(
            [sys.executable, "-m", "rewriter", *args],
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=env,
        )


@dataclass
class Done:
    code: int
    stdout: bytes
    stderr: str
    elapsed: float


def finish(process: subprocess.Popen[bytes], started: float | None = None) -> Done:
    out, err = process.communicate(timeout=90)
    elapsed = time.monotonic() - started if started is not None else 0.0
    return Done(process.returncode, out, err.decode(), elapsed)


def assert_clean(done: Done) -> None:
    assert done.code == 0, done.stderr
    assert "locked" not in done.stderr
    assert "probe cache" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def probe_in_process(
    spec: str, images: list[str], insecure: tuple[str, ...], offline: bool = False, **kw: object
) -> dict[str, ProbeResult]:
    """The probe's answers for `images` from this process (warming a cache, or reading it
    back offline), without the cost of starting a render."""
    warnings: list[str] = []
    settings = ProbeSettings(insecure_registries=frozenset(insecure), timeout=5, **kw)  # type: ignore[arg-type]
    refs = [ImageRef.parse(image) for image in images]
    results = probe_cached(refs, settings, spec, 3600, warnings.append, offline)
    assert warnings == []
    return {ref.text: results[(ref.registry, ref.repository, ref.reference)] for ref in refs}


def sqlite_rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM responses").fetchone()[0])


@pytest.fixture(scope="module")
def reference(stand: Stand, tmp_path_factory: pytest.TempPathFactory) -> Done:
    """The render of the stand-in's images without any cache: what every render with a
    broken cache must still print."""
    workdir = tmp_path_factory.mktemp("reference")
    done = finish(
        start(workdir, "none", shop_deployment(*stand.images()), insecure=(stand.fast.host,))
    )
    assert_clean(done)
    return done


# -- 8 at once -----------------------------------------------------------------------------


def test_eight_renders_at_once_on_one_sqlite_file(stand: Stand, tmp_path: Path) -> None:
    images = stand.images()
    stdin = shop_deployment(*images)
    cache = tmp_path / "shared" / "probes.sqlite"
    insecure = (stand.fast.host,)

    runs = [
        start(tmp_path / f"r{n}", str(cache), stdin, insecure=insecure) for n in range(CONCURRENT)
    ]
    done = [finish(run) for run in runs]

    for result in done:
        assert_clean(result)
    assert len({result.stdout for result in done}) == 1
    text = done[0].stdout.decode()
    assert f"image: {stand.fast.host}/pub0/app:1.0\n" in text
    assert f"image: {PROXY}{stand.fast.host}/priv0/app:1.0\n" in text
    assert sqlite_rows(cache) == len(images)
    # Every answer made it into the file, readable:
    cached = probe_in_process(str(cache), images, insecure, offline=True)
    assert all(result.cached for result in cached.values())


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_eight_renders_at_once_on_one_redis(
    stand: Stand, redis_server: RedisServer, tmp_path: Path
) -> None:
    import redis

    url = redis_db(redis_server, 8)
    redis.Redis.from_url(url).flushdb()
    stdin = shop_deployment(*stand.images())
    insecure = (stand.fast.host,)

    runs = [start(tmp_path / f"r{n}", url, stdin, insecure=insecure) for n in range(CONCURRENT)]
    done = [finish(run) for run in runs]

    for result in done:
        assert_clean(result)
    assert len({result.stdout for result in done}) == 1
    client = redis.Redis.from_url(url)
    assert len(list(client.scan_iter("rewriter-probes:*"))) == len(stand.images())
    cached = probe_in_process(url, stand.images(), insecure, offline=True)
    assert all(result.cached for result in cached.values())
    client.flushdb()


def redis_db(server: RedisServer, number: int) -> str:
    """A database of the shared redis-server of our own (others flush theirs)."""
    return server.url.rsplit("/", 1)[0] + f"/{number}"


# -- SQLite that cannot be used ------------------------------------------------------------


class Mounts:
    """tmpfs mounts made by a test, unmounted afterwards."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, where: Path, size_kib: int, *options: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        opts = ",".join([f"size={size_kib}k", "mode=0700", *options])
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
        self.points.append(where)

    def remount_read_only(self, where: Path) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)

    def unmount_all(self) -> None:
        for point in reversed(self.points):
            subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)


def fill(directory: Path, leave_kib: int) -> None:
    """Fill the filesystem of `directory` up to `leave_kib` KiB of free space."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    with open(directory / "filler", "wb") as out:
        out.write(b"\0" * max(free - leave_kib * 1024, 0))


def checkpointed_copy(source: Path, target: Path) -> None:
    """`source`'s content in one file (no -wal) at `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(source)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        with contextlib.closing(sqlite3.connect(target)) as copy:
            db.backup(copy)
    os.chmod(target, 0o600)


# case -> the warning it must give (a fragment)
SQLITE_CASES = {
    "corrupt file": "is corrupt",
    "truncated file": "is corrupt",
    "bit rot in the middle": "probe cache",
    "read-only directory, no cache yet": "is unusable",
    "read-only directory, warm cache": "is unusable",
    "full disk from the start": "is unusable",
    "disk fills up during the render": "probe cache",
}


# Rendered by the CLI; the others go through the same rewriter.probe.answers in this
# process (what the CLI's _prober does), which costs no interpreter start-up.
THROUGH_THE_CLI = {
    "corrupt file",
    "read-only directory, no cache yet",
    "disk fills up during the render",
}


@dataclass
class InProcess:
    warnings: list[str]
    verdicts: dict[str, Verdict]


def in_process(spec: str, images: list[str], insecure: tuple[str, ...]) -> InProcess:
    warnings: list[str] = []
    settings = ProbeSettings(insecure_registries=frozenset(insecure), timeout=5)
    refs = [ImageRef.parse(image) for image in images]
    results = probe_cached(refs, settings, spec, 3600, warnings.append)
    verdicts = {r.text: results[(r.registry, r.repository, r.reference)].verdict for r in refs}
    return InProcess(warnings, verdicts)


@dataclass
class Broken:
    results: dict[str, Done | InProcess]
    skipped: str | None


@pytest.fixture(scope="module")
def broken_sqlite(stand: Stand, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broken]:
    """Every case set up, then rendered all at once."""
    base = tmp_path_factory.mktemp("broken-sqlite")
    stdin = shop_deployment(*stand.images())
    insecure = (stand.fast.host,)
    warm = base / "warm" / "probes.sqlite"
    probe_in_process(str(warm), stand.images(), insecure)
    mounts = Mounts()
    caches: dict[str, Path] = {}
    skipped: str | None = None
    try:
        caches["corrupt file"] = base / "corrupt" / "probes.sqlite"
        caches["corrupt file"].parent.mkdir()
        caches["corrupt file"].write_bytes(b"SQLite format 3\0" + os.urandom(20000))

        caches["truncated file"] = base / "truncated" / "probes.sqlite"
        checkpointed_copy(warm, caches["truncated file"])
        size = caches["truncated file"].stat().st_size
        os.truncate(caches["truncated file"], size // 2 + 100)

        caches["bit rot in the middle"] = base / "bitrot" / "probes.sqlite"
        checkpointed_copy(warm, caches["bit rot in the middle"])
        with open(caches["bit rot in the middle"], "r+b") as rot:
            rot.seek(2 * 4096 + 17)  # past the schema page, into the stored answers
            rot.write(os.urandom(3 * 4096))

        try:
            if os.geteuid() != 0:  # without root, a directory mode is enough
                ro_new = base / "ro-new"
                ro_new.mkdir(mode=0o500)
                caches["read-only directory, no cache yet"] = ro_new / "sub" / "probes.sqlite"
                ro_warm = base / "ro-warm"
                checkpointed_copy(warm, ro_warm / "probes.sqlite")
                ro_warm.chmod(0o500)
                caches["read-only directory, warm cache"] = ro_warm / "probes.sqlite"
            else:
                mounts.tmpfs(base / "ro-new", 64, "ro")
                caches["read-only directory, no cache yet"] = base / "ro-new" / "probes.sqlite"
                mounts.tmpfs(base / "ro-warm", 512)
                checkpointed_copy(warm, base / "ro-warm" / "probes.sqlite")
                mounts.remount_read_only(base / "ro-warm")
                caches["read-only directory, warm cache"] = base / "ro-warm" / "probes.sqlite"
            mounts.tmpfs(base / "full", 64)
            fill(base / "full", 0)
            caches["full disk from the start"] = base / "full" / "rewriter" / "probes.sqlite"
            mounts.tmpfs(base / "filling", 256)
            fill(base / "filling", 88)  # room for the tables, not for the answers
            caches["disk fills up during the render"] = base / "filling" / "probes.sqlite"
        except pytest.skip.Exception as exc:
            skipped = str(exc)

        runs = {
            name: start(base / f"run-{n}", str(cache), stdin, insecure=insecure)
            for n, (name, cache) in enumerate(caches.items())
            if name in THROUGH_THE_CLI
        }
        results: dict[str, Done | InProcess] = {
            name: in_process(str(cache), stand.images(), insecure)
            for name, cache in caches.items()
            if name not in THROUGH_THE_CLI
        }
        results |= {name: finish(run) for name, run in runs.items()}
        yield Broken(results, skipped)
    finally:
        mounts.unmount_all()


@pytest.mark.parametrize("case", list(SQLITE_CASES))
def test_unusable_sqlite_cache_warns_and_renders(
    case: str, broken_sqlite: Broken, reference: Done
) -> None:
    if case not in broken_sqlite.results:
        pytest.skip(broken_sqlite.skipped or "not set up")
    result = broken_sqlite.results[case]
    if isinstance(result, InProcess):
        assert any(SQLITE_CASES[case] in warning for warning in result.warnings), result
        assert all(warning.startswith("probe cache") for warning in result.warnings)
        for image, verdict in result.verdicts.items():
            assert verdict is (Verdict.PUBLIC if "/pub" in image else Verdict.PRIVATE)
        return
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert SQLITE_CASES[case] in result.stderr, result.stderr
    assert result.stderr.startswith("warning: probe cache"), result.stderr
    assert result.stdout == reference.stdout


# -- Redis that cannot be used ----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_redis_unreachable_or_holding_garbage(
    stand: Stand, redis_server: RedisServer, reference: Done, tmp_path: Path
) -> None:
    import redis
    from support.registries import free_port

    url = redis_db(redis_server, 9)
    client = redis.Redis.from_url(url)
    client.flushdb()
    stdin = shop_deployment(*stand.images())
    insecure = (stand.fast.host,)
    probe_in_process(url, stand.images(), insecure)
    keys = list(client.scan_iter("rewriter-probes:*"))
    assert len(keys) == len(stand.images())
    for name in keys:
        client.set(name, b"\x80garbage{not json")

    gone = start(tmp_path / "gone", f"redis://127.0.0.1:{free_port()}/0", stdin, insecure=insecure)
    garbage = start(tmp_path / "garbage", url, stdin, insecure=insecure)
    gone_done, garbage_done = finish(gone), finish(garbage)

    for result in (gone_done, garbage_done):
        assert result.code == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == reference.stdout
        # Warnings, and the line that sums up the probing (stderr is no terminal here).
        *warnings, summary = result.stderr.splitlines()
        assert all(line.startswith("warning: ") for line in warnings)
        assert summary.startswith("probed ")
    assert "is unusable" in gone_done.stderr
    assert f"probe cache: {len(keys)} stored answers unreadable" in garbage_done.stderr
    # the garbage was replaced by good answers
    assert all(not (client.get(name) or b"").startswith(b"\x80") for name in keys)
    client.flushdb()


def test_redis_going_away_mid_render(stand: Stand, tmp_path: Path) -> None:
    """Two renders at once, each with a redis-server of its own, while the probes run
    against a slow registry: one Redis dies (SIGKILL: refused at once), the other stops
    answering (SIGSTOP: every call waits for its timeout)."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/test installs it)")
    pytest.importorskip("redis")
    ways = {"killed": signal.SIGKILL, "frozen": signal.SIGSTOP}
    # 8 images each (0.3 s per manifest, two at a time), different ones per render so
    # that the registry's log tells when each render is probing.
    images = {how: stand.images(stand.slow)[n::3][:8] for n, how in enumerate(ways)}
    args = ("--concurrency", "2", "--deadline", "15")
    insecure = (stand.slow.host,)
    servers: dict[str, RedisServer] = {}
    try:
        for how in ways:
            servers[how] = start_redis(tmp_path / f"redis-{how}")
        started = time.monotonic()
        renders = {
            how: start(
                tmp_path / how,
                servers[how].url,
                shop_deployment(*images[how]),
                *args,
                insecure=insecure,
            )
            for how in ways
        }
        for how, sig in ways.items():
            repos = {image.split("/")[1] for image in images[how]}
            wait_until = time.monotonic() + 30
            while time.monotonic() < wait_until and not any(
                request.path.split("/")[2] in repos
                for request in stand.slow.seen()
                if request.path.count("/") > 2
            ):
                time.sleep(0.02)  # until this render asks for its first manifest
            os.kill(servers[how].process.pid, sig)
        results = {how: finish(render, started) for how, render in renders.items()}
    finally:
        for server in servers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGCONT)
            server.stop()

    for how, result in results.items():
        assert result.code == 0, (how, result.stderr)
        assert "Traceback" not in result.stderr
        text = result.stdout.decode()
        for image in images[how]:  # decided as without a cache: public kept, private proxied
            expected = image if "/pub" in image else PROXY + image
            assert f"image: {expected}\n" in text
        # Redis went before the render opened it to store, or while it stored: said either way.
        assert "answers not stored" in result.stderr, (how, result.stderr)
        assert result.elapsed < 15 + 1  # the deadline holds whatever Redis does
