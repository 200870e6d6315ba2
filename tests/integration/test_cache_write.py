"""Storing answers in the probe cache (rewriter/probe/cache/write.py): how it is opened,
what it refuses, what it stores; and the cache as an input (what a render then reads)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from requests_cache.backends.sqlite import SQLiteCache
from support import ROOT
from support.helpers import probe_cached, warm_cache
from support.registries import Route, stub_registry

from rewriter.errors import RewriterError
from rewriter.probe.cache.admin import cache_clear, cache_info
from rewriter.probe.cache.backends import Unusable
from rewriter.probe.cache.format import Entry
from rewriter.probe.cache.write import open_backend, store_answers
from rewriter.probe.policy import ProbeSettings
from rewriter.reference import ImageRef

pytestmark = pytest.mark.usefixtures("isolated")


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
    warm_cache(str(cache))
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
    warm_cache(str(cache))
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
    images = warm_cache(str(cache))
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

    warm_cache(str(blocker / "probes.sqlite"), warn=warnings.append)

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
        from rewriter.probe import answers
        from rewriter.probe.policy import ProbeSettings
        from rewriter.reference import ImageRef
        from rewriter.probe.cache.spec import parse_spec
        domain, cache, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
        warnings = []
        images = [ImageRef.parse(f"{domain}/w{worker}/app{i}:1.0") for i in range(25)]
        settings = ProbeSettings(insecure_registries=frozenset({domain}), timeout=5, deadline=30)
        results = answers(images, settings, parse_spec(cache), 3600, warnings.append)
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

# -- the cache as an input (issue 15 section 4) ------------------------------------------------


def offline_answers(cache: str, images: list[str], warnings: list[str]) -> list[bool]:
    """Whether each image is answered from `cache` (offline: nothing else answers)."""
    insecure = frozenset(image.split("/")[0] for image in images)
    settings = ProbeSettings(insecure_registries=insecure)
    refs = [ImageRef.parse(image) for image in images]
    results = probe_cached(refs, settings, cache, 3600, warnings.append, True)
    return [results[ref.probe_key].cached for ref in refs]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_cache_file_of_another_user_is_not_read(tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    images = warm_cache(str(cache))
    os.chown(cache, 4242, -1)
    before = cache.read_bytes()

    warnings: list[str] = []
    assert offline_answers(str(cache), images, warnings) == [False] * len(images)
    assert len(warnings) == 1
    assert f"probe cache {cache} is not read (owned by uid 4242" in warnings[0]
    warnings.clear()
    warm_cache(str(cache), warn=warnings.append)  # neither written nor taken over
    assert len(warnings) == 1 and "owned by uid 4242" in warnings[0]
    assert cache.stat().st_uid == 4242 and cache.read_bytes() == before


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_cache_file_writable_by_others_is_not_read_and_started_anew(
    mode: int, tmp_path: Path
) -> None:
    cache = tmp_path / "probes.sqlite"
    images = warm_cache(str(cache))
    cache.chmod(mode)

    warnings: list[str] = []
    assert offline_answers(str(cache), images, warnings) == [False] * len(images)
    assert warnings == [
        f"probe cache {cache} is not read (writable by group or others (mode {mode:04o}));"
        " probing, and starting it anew"
    ]
    warnings.clear()
    again = warm_cache(str(cache), count=1, warn=warnings.append)
    assert len(warnings) == 1
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # Started anew: what the loose file held is gone, what was stored since is there.
    assert offline_answers(str(cache), images + again, []) == [False] * len(images) + [True]


def test_a_symlinked_cache_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "real.sqlite"
    target.parent.mkdir()
    images = warm_cache(str(target))
    target.chmod(0o640)
    link = tmp_path / "probes.sqlite"
    link.symlink_to(target)

    warnings: list[str] = []
    assert offline_answers(str(link), images, warnings) == [False] * len(images)
    assert warnings == [
        f"probe cache {link} is not read (it is a symbolic link; give the file's own path);"
        " probing without a cache"
    ]
    warnings.clear()
    warm_cache(str(link), warn=warnings.append)
    assert len(warnings) == 1 and "symbolic link" in warnings[0]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # not chmod'ed 0600 through the link
    assert "answers: not read: it is a symbolic link" in cache_info(str(link))

    # Opened to write without a read first (the writer on its own): refused as well.
    with pytest.raises(Unusable, match="symbolic link"):
        open_backend(str(link), print)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_dangling_symlink_is_not_created_through(tmp_path: Path) -> None:
    target = tmp_path / "planted" / "probes.sqlite"
    target.parent.mkdir()
    link = tmp_path / "probes.sqlite"
    link.symlink_to(target)

    warnings: list[str] = []
    warm_cache(str(link), warn=warnings.append)

    assert len(warnings) == 1 and "symbolic link" in warnings[0], warnings
    assert not target.exists()
    with pytest.raises(Unusable, match="symbolic link"):
        open_backend(str(link), print)
    assert not target.exists()


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_symlinked_companion_file_is_refused(suffix: str, tmp_path: Path) -> None:
    """SQLite opens the -wal, -shm and -journal files by name: a link planted there
    would have it write elsewhere."""
    cache = tmp_path / "probes.sqlite"
    images = warm_cache(str(cache))
    for companion in ("-wal", "-shm", "-journal"):
        Path(f"{cache}{companion}").unlink(missing_ok=True)
    planted = tmp_path / "planted"
    Path(f"{cache}{suffix}").symlink_to(planted)

    warnings: list[str] = []
    assert offline_answers(str(cache), images, warnings) == [False] * len(images)
    assert warnings == [
        f"probe cache {cache} is not read (its {suffix} file is a symbolic link);"
        " probing without a cache"
    ]
    with pytest.raises(Unusable, match="symbolic link"):
        open_backend(str(cache), print)
    assert not planted.exists()


@pytest.mark.parametrize("name", ["a#b", "what?mode=ro", "100%25", "sp ace&x=1"])
def test_cache_paths_with_uri_characters_work(name: str, tmp_path: Path) -> None:
    cache = tmp_path / name / f"{name}.sqlite"
    warnings: list[str] = []
    images = warm_cache(str(cache), warn=warnings.append)
    assert warnings == []
    assert cache.is_file()
    assert sorted(p.name for p in cache.parent.iterdir() if p.suffix == ".sqlite") == [cache.name]
    assert offline_answers(str(cache), images, warnings) == [True] * len(images)
    assert warnings == []
    assert f"answers: {len(images)} ({len(images)} fresh, 0 expired)" in cache_info(str(cache))
    assert cache_clear(str(cache)) == len(images)


# -- a Redis password ----------------------------------------------------------------------------

REDIS_PASSWORD = "redis-pw-7c1e9"


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/test installs it)")
    pytest.importorskip("redis")
    from support.registries import start_redis

    server = start_redis(tmp_path_factory.mktemp("redis-pw"), password=REDIS_PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def render(
    args: list[str], stdin: bytes, env: dict[str, str], home: Path
) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REWRITER_", "ARGOCD_"))}
    return subprocess.run(
        [sys.executable, "-m", "rewriter", *args],
        input=stdin,
        capture_output=True,
        env={**clean, "HOME": str(home), "REWRITER_LICENSE_ID": "LIC-1", **env},
        timeout=60,
        check=False,
    )


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_a_redis_password_is_never_shown(redis_with_password: object, tmp_path: Path) -> None:
    port = redis_with_password.port  # type: ignore[attr-defined]
    with_password = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    wrong = f"redis://:wrong-{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    without = f"redis://127.0.0.1:{port}/0"
    log = tmp_path / "rewriter.log"
    with stub_registry({"/v2/": Route(200)}, default=Route(200)) as stub:
        stdin = (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n"
            f"  - name: c\n    image: {stub.domain}/team/app:1.0\n"
        ).encode()
        common = ["--app-slug", "app", "--insecure-registry", stub.domain, "-v"]
        common += ["--log-file", str(log)]
        runs = {
            "url": render([*common, "--cache", with_password], stdin, {}, tmp_path),
            "wrong": render([*common, "--cache", wrong], stdin, {}, tmp_path),
            "env": render(
                [*common, "--cache", without],
                stdin,
                {"REWRITER_CACHE_PASSWORD": REDIS_PASSWORD},
                tmp_path,
            ),
            "none": render([*common, "--cache", without], stdin, {}, tmp_path),
        }
    for name, done in runs.items():
        assert done.returncode == 0, (name, done.stderr)
        assert REDIS_PASSWORD.encode() not in done.stderr, name
    assert runs["url"].stderr.count(b"warning") == 0
    assert runs["env"].stderr.count(b"warning") == 0
    assert b"warning: probe cache redis://:***@127.0.0.1" in runs["wrong"].stderr
    assert b"warning: probe cache redis://127.0.0.1" in runs["none"].stderr
    assert REDIS_PASSWORD not in log.read_text()

    info = cache_info(with_password)
    assert REDIS_PASSWORD not in info and "answers: 1" in info
    for url in (wrong, without):
        with pytest.raises(RewriterError) as raised:
            cache_info(url)
        assert REDIS_PASSWORD not in str(raised.value)
    os.environ["REWRITER_CACHE_PASSWORD"] = REDIS_PASSWORD
    try:
        assert "answers: 1" in cache_info(without)  # the variable, for `cache info` too
        assert cache_clear(without) == 1
    finally:
        del os.environ["REWRITER_CACHE_PASSWORD"]
