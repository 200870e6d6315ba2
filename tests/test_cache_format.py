"""requests-cache is imported without the client libraries of backends rewriter never
uses, and they stay importable afterwards (a fresh interpreter for each check)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


UNUSED = "print(sorted(m for m in ('boto3', 'botocore', 'pymongo', 'redis') if m in sys.modules))"


def test_unused_backend_libraries_are_not_imported() -> None:
    # rewriter.cache is what imports requests-cache (the probe no longer does).
    out = run(f"import sys, rewriter.cache\nassert 'requests_cache' in sys.modules\n{UNUSED}")
    assert out == "[]\n"
    # The check can fail: requests-cache imported plainly loads the Redis client.
    assert run(f"import sys, requests_cache\n{UNUSED}") == "['redis']\n"


def test_they_stay_importable_and_the_redis_backend_works() -> None:
    pytest.importorskip("redis")
    out = run(
        "import rewriter.cachelib, redis\n"
        "from requests_cache.backends.redis import RedisCache\n"
        "print(RedisCache.__name__, redis.Redis.__name__)"
    )
    assert out == "RedisCache Redis\n"


def test_a_library_imported_before_is_left_alone() -> None:
    pytest.importorskip("redis")
    out = run("import sys, redis, rewriter.cachelib\nprint(sys.modules['redis'] is redis)")
    assert out == "True\n"
