"""The probe cache: where it lives, how it is opened, what it refuses, info and clear."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import probe_cached
from registries import Route, free_port, stub_registry
from requests_cache.backends.sqlite import SQLiteCache

from rewriter.cache import (
    Unusable,
    cache_clear,
    cache_info,
    default_cache_path,
    open_backend,
    store_answers,
)
from rewriter.errors import RewriterError
from rewriter.probe import ProbeSettings, Verdict
from rewriter.reference import ImageRef
from rewriter.store import Entry

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def warm(cache: str, count: int = 3, warn: Callable[[str], None] = print) -> list[str]:
    """Probe `count` images of a stub into `cache`; their names."""
    with stub_registry({"/v2/": Route(200)}, default=Route(200)) as stub:
        images = [f"{stub.domain}/team/app{i}:1.0" for i in range(count)]
        settings = ProbeSettings(insecure_registries=frozenset({stub.domain}), timeout=2)
        results = probe_cached([ImageRef.parse(i) for i in images], settings, cache, 3600, warn)
    assert {r.verdict for r in results.values()} == {Verdict.PUBLIC}
    return images


# -- where ------------------------------------------------------------------------------


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert default_cache_path() == str(tmp_path / "c" / "rewriter" / "probes.sqlite")


@pytest.mark.parametrize("value", [None, "", "relative/dir"])
def test_default_path_falls_back_to_home(
    value: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if value is None:
        monkeypatch.delenv("XDG_CACHE_HOME")
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", value)  # relative: ignored, as XDG says
    assert default_cache_path() == str(tmp_path / "home" / ".cache" / "rewriter" / "probes.sqlite")


# -- opening ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["probes.sqlite", "./cache/probes.sqlite", "", "../x.sqlite"])
def test_relative_paths_are_refused(spec: str) -> None:
    with pytest.raises(RewriterError, match="absolute path"):
        open_backend(spec, print)


def test_other_url_schemes_are_refused() -> None:
    with pytest.raises(RewriterError, match="redis://"):
        open_backend("memcached://127.0.0.1:11211", print)


def test_tilde_is_expanded(tmp_path: Path) -> None:
    assert isinstance(open_backend("~/probes.sqlite", print), SQLiteCache)
    assert (tmp_path / "home" / "probes.sqlite").exists()


@pytest.mark.parametrize("spec", ["none", "NONE", " none "])
def test_none_is_no_backend(spec: str) -> None:
    assert open_backend(spec, print) is None


def test_answers_are_json_never_pickle(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path / "p.sqlite"), print)
    assert backend is not None
    assert backend.responses.serializer.name == "json"


def test_stored_answers_expire_after_the_ttl(tmp_path: Path) -> None:
    cache = tmp_path / "p.sqlite"
    backend = open_backend(str(cache), print)
    assert backend is not None
    url = "https://registry.example/v2/team/app/manifests/1.0"
    before = time.time()
    assert store_answers(backend, [Entry(url, 401, "Unauthorized", {})], 123) == []
    with sqlite3.connect(cache) as db:
        ((expires,),) = db.execute("SELECT expires FROM responses").fetchall()
    assert before + 123 - 1 <= expires <= time.time() + 123 + 1


def test_no_ttl_stores_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "p.sqlite"
    backend = open_backend(str(cache), print)
    assert backend is not None
    url = "https://registry.example/v2/team/app/manifests/1.0"
    assert store_answers(backend, [Entry(url, 200, "OK", {})], 0) == []
    assert cache_info(str(cache)).splitlines()[2] == "answers: 0 (0 fresh, 0 expired)"


def test_file_is_private(tmp_path: Path) -> None:
    cache = tmp_path / "fresh" / "dir" / "probes.sqlite"
    warm(str(cache))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        sidecar = Path(str(cache) + suffix)
        if sidecar.exists():
            assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700


def test_loose_file_mode_is_tightened(tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    cache.touch(mode=0o644)
    cache.chmod(0o644)
    open_backend(str(cache), print)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_wal_mode(tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    warm(str(cache))
    with sqlite3.connect(cache) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_corrupt_file_is_reported_and_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    cache.write_bytes(b"this is not a database\x00" * 200)
    warnings: list[str] = []

    backend = open_backend(str(cache), warnings.append)

    assert isinstance(backend, SQLiteCache)
    assert len(warnings) == 1
    assert "corrupt" in warnings[0]
    assert str(cache) in warnings[0]
    images = warm(str(cache))
    assert (
        cache_info(str(cache)).splitlines()[2]
        == f"answers: {len(images)} ({len(images)} fresh, 0 expired)"
    )


def test_unusable_location_is_said(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(Unusable, match="FileExistsError"):
        open_backend(str(blocker / "probes.sqlite"), print)


def test_unusable_location_means_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    warnings: list[str] = []

    warm(str(blocker / "probes.sqlite"), warn=warnings.append)

    assert len(warnings) == 1
    assert "unusable" in warnings[0]
    assert warnings[0].endswith("; answers not stored")


def test_offline_never_sends(tmp_path: Path) -> None:
    with stub_registry({"/v2/": Route(200)}, default=Route(200)) as stub:
        image = ImageRef.parse(f"{stub.domain}/team/app:1.0")
        settings = ProbeSettings(insecure_registries=frozenset({stub.domain}), timeout=2)
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        for spec in (str(tmp_path / "p.sqlite"), "none", str(blocker / "p.sqlite")):
            results = probe_cached([image], settings, spec, offline=True)
            assert [r.detail for r in results.values()] == ["offline, not in cache"]
        assert stub.requests() == []


def test_renders_at_once_share_one_file(tmp_path: Path) -> None:
    """Several processes probing into one cache file at the same time: no lock errors, no
    lost answers (WAL, busy timeout)."""
    cache = tmp_path / "probes.sqlite"
    script = textwrap.dedent(
        """
        import sys
        from rewriter.answers import resolve
        from rewriter.policy import ProbeSettings
        from rewriter.reference import ImageRef
        from rewriter.store import parse_spec
        domain, cache, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
        warnings = []
        images = [ImageRef.parse(f"{domain}/w{worker}/app{i}:1.0") for i in range(25)]
        settings = ProbeSettings(insecure_registries=frozenset({domain}), timeout=5, deadline=30)
        results = resolve(images, settings, parse_spec(cache), 3600, warnings.append)
        bad = [r for r in results.values() if r.verdict.value != "public"]
        print(len(results), len(bad), warnings)
        sys.exit(1 if bad or warnings else 0)
        """
    )
    with stub_registry({"/v2/": Route(200)}, default=Route(200)) as stub:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", script, stub.domain, str(cache), str(n)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(3)
        ]
        outputs = [worker.communicate(timeout=60) for worker in workers]

    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, out + err
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone() == (75,)


# -- info and clear ------------------------------------------------------------------------


def test_info_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "nothing" / "probes.sqlite"
    assert (
        cache_info(str(cache))
        == f"backend: sqlite\nlocation: {cache}\nanswers: 0 (no cache file yet)"
    )
    assert not cache.parent.exists()


def test_info_and_clear(tmp_path: Path) -> None:
    cache = str(tmp_path / "probes.sqlite")
    warm(cache, count=4)

    info = cache_info(cache).splitlines()
    assert info[:3] == ["backend: sqlite", f"location: {cache}", "answers: 4 (4 fresh, 0 expired)"]
    assert info[3].startswith("size: ")

    assert cache_clear(cache) == 4
    assert cache_info(cache).splitlines()[2] == "answers: 0 (0 fresh, 0 expired)"
    assert cache_clear(cache) == 0


def test_clear_of_a_missing_or_empty_file(tmp_path: Path) -> None:
    assert cache_clear(str(tmp_path / "missing.sqlite")) == 0
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert cache_clear(str(empty)) == 0


def test_info_and_clear_of_a_corrupt_file(tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    cache.write_bytes(b"garbage" * 500)
    assert "corrupt" in cache_info(str(cache))
    assert cache_clear(str(cache)) == 0
    assert not cache.exists()


def test_info_and_clear_of_none() -> None:
    assert "disabled" in cache_info("none")
    assert cache_clear("none") == 0


def test_info_and_clear_refuse_relative_paths() -> None:
    with pytest.raises(RewriterError):
        cache_info("probes.sqlite")
    with pytest.raises(RewriterError):
        cache_clear("probes.sqlite")


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_redis_info_and_clear(redis_server: object) -> None:
    import redis

    url = redis_server.url  # type: ignore[attr-defined]
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.set("someone-else:key", "kept")  # clear touches only our namespace
    warm(url, count=3)

    info = cache_info(url).splitlines()
    assert info[0] == "backend: redis"
    assert info[2] == "answers: 3"
    values = [client.get(k) for k in client.scan_iter("rewriter-probes:*")]
    assert all(json.loads(v or b"")["status_code"] == 200 for v in values)

    assert cache_clear(url) == 3
    assert cache_info(url).splitlines()[2] == "answers: 0"
    assert client.get("someone-else:key") == b"kept"


def test_redis_password_is_not_shown() -> None:
    from rewriter.store import redact_url

    port = 6379
    assert (
        redact_url(f"redis://user:hunter2@127.0.0.1:{port}/0")
        == f"redis://user:***@127.0.0.1:{port}/0"
    )
    assert redact_url(f"redis://:hunter2@127.0.0.1:{port}/0") == f"redis://:***@127.0.0.1:{port}/0"
    assert redact_url("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"


def test_redis_unreachable_for_info_is_an_error() -> None:
    with pytest.raises(RewriterError, match="cannot reach"):
        cache_info(f"redis://127.0.0.1:{free_port()}/0")
