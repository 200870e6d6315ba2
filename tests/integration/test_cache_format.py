"""requests-cache, as rewriter/probe/cache/format.py imports it: without the client
libraries of backends rewriter never uses, and those stay importable afterwards (a fresh
interpreter for each check). What the format itself is, is checked by writing through
requests-cache and reading back without it (tests/integration/test_cache_read.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


UNUSED = "print(sorted(m for m in ('boto3', 'botocore', 'pymongo', 'redis') if m in sys.modules))"


def test_unused_backend_libraries_are_not_imported(tmp_path: Path) -> None:
    # Opening a backend to write is what imports requests-cache; importing the writer
    # does not (a render imports it before it knows whether anything is to be stored).
    out = run(
        "import sys\n"
        "from rewriter.probe.cache.write import open_backend\n"
        "assert 'requests_cache' not in sys.modules\n"
        "assert open_backend(sys.argv[1], print) is not None\n"
        "assert 'requests_cache' in sys.modules\n"
        f"{UNUSED}",
        str(tmp_path / "probes.sqlite"),
    )
    assert out == "[]\n"
    # The check can fail: requests-cache imported plainly loads the Redis client.
    assert run(f"import sys, requests_cache\n{UNUSED}") == "['redis']\n"


def test_they_stay_importable_and_the_redis_backend_works() -> None:
    pytest.importorskip("redis")
    out = run(
        "from rewriter.probe.cache.format import import_requests_cache\n"
        "import_requests_cache()\n"
        "import redis\n"
        "from requests_cache.backends.redis import RedisCache\n"
        "print(RedisCache.__name__, redis.Redis.__name__)"
    )
    assert out == "RedisCache Redis\n"


def test_a_library_imported_before_is_left_alone() -> None:
    pytest.importorskip("redis")
    out = run(
        "import sys, redis\n"
        "from rewriter.probe.cache.format import import_requests_cache\n"
        "import_requests_cache()\n"
        "print(sys.modules['redis'] is redis)"
    )
    assert out == "True\n"
