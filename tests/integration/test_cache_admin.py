"""`rewriter cache info` and `clear` (rewriter/probe/cache/admin.py): what they say of
SQLite and Redis caches, missing, empty, corrupt or unreachable ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.helpers import warm_cache
from support.registries import free_port

from rewriter.errors import RewriterError
from rewriter.probe.cache.admin import cache_clear, cache_info

pytestmark = pytest.mark.usefixtures("isolated")


def test_info_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "nothing" / "probes.sqlite"
    assert (
        cache_info(str(cache))
        == f"backend: sqlite\nlocation: {cache}\nanswers: 0 (no cache file yet)"
    )
    assert not cache.parent.exists()


def test_info_and_clear(tmp_path: Path) -> None:
    cache = str(tmp_path / "probes.sqlite")
    warm_cache(cache, count=4)

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
    warm_cache(url, count=3)

    info = cache_info(url).splitlines()
    assert info[0] == "backend: redis"
    assert info[2] == "answers: 3"
    values = [client.get(k) for k in client.scan_iter("rewriter-probes:*")]
    assert all(json.loads(v or b"")["status_code"] == 200 for v in values)

    assert cache_clear(url) == 3
    assert cache_info(url).splitlines()[2] == "answers: 0"
    assert client.get("someone-else:key") == b"kept"


def test_redis_unreachable_for_info_is_an_error() -> None:
    with pytest.raises(RewriterError, match="cannot reach"):
        cache_info(f"redis://127.0.0.1:{free_port()}/0")
