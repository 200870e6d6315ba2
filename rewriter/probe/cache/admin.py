"""`rewriter cache info` and `rewriter cache clear`: what a cache holds, and forgetting it.

Unlike a render, these fail with an error when the cache cannot be reached: the user
asked about that very cache.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import TYPE_CHECKING

from rewriter.errors import RewriterError
from rewriter.probe.cache import backends
from rewriter.probe.cache.format import (
    REDIS_NAMESPACE,
    count_responses,
    delete_responses,
    redis_backend,
    redis_key,
)
from rewriter.probe.cache.spec import parse_spec, redact_url

if TYPE_CHECKING:
    from redis import Redis


def cache_info(spec: str) -> str:
    """Human text: backend, location, number of stored answers, size. Creates nothing."""
    parsed = parse_spec(spec)
    if parsed.kind == "none":
        return "backend: none\nthe probe cache is disabled"
    if parsed.kind == "redis":
        return _redis_info(parsed.location)
    return _sqlite_info(parsed.location)


def cache_clear(spec: str) -> int:
    """Forget every stored answer; the number of answers removed."""
    parsed = parse_spec(spec)
    if parsed.kind == "none":
        return 0
    if parsed.kind == "redis":
        connection = _redis_for_admin(parsed.location)
        cache = redis_backend(connection)
        try:
            count = len(cache.responses)
            cache.clear()  # type: ignore[no-untyped-call]
        except Exception as exc:
            where = redact_url(parsed.location)
            raise RewriterError(f"cannot clear the probe cache at {where}: {exc}") from None
        return count
    return _sqlite_clear(parsed.location)


def _redis_for_admin(url: str) -> Redis:
    try:
        return backends.redis_connection(url)
    except backends.Unusable as exc:
        raise RewriterError(f"cannot reach the probe cache at {redact_url(url)}: {exc}") from None


def _redis_info(url: str) -> str:
    connection = _redis_for_admin(url)
    try:
        keys = list(redis_backend(connection).responses.keys())
        size = sum(int(connection.strlen(redis_key(key)) or 0) for key in keys)
    except Exception as exc:
        raise RewriterError(f"cannot read the probe cache at {redact_url(url)}: {exc}") from None
    return "\n".join(
        (
            "backend: redis",
            f"location: {redact_url(url)} (keys {REDIS_NAMESPACE}:*)",
            f"answers: {len(keys)}",
            f"size: {_human_size(size)}",
        )
    )


def _sqlite_info(path: str) -> str:
    lines = ["backend: sqlite", f"location: {path}"]
    if not os.path.lexists(path):
        return "\n".join([*lines, "answers: 0 (no cache file yet)"])
    refused = backends.sqlite_refusal(path)
    if refused:
        return "\n".join([*lines, f"answers: not read: {refused}"])
    size = sum(
        os.path.getsize(path + suffix) for suffix in ("", "-wal") if os.path.exists(path + suffix)
    )
    try:
        fresh, total = _sqlite_counts(path)
    except sqlite3.OperationalError as exc:
        raise RewriterError(f"cannot read the probe cache {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        lines.append(f"answers: unknown: the file is corrupt ({exc}); the next render rebuilds it")
    else:
        lines.append(f"answers: {total} ({fresh} fresh, {total - fresh} expired)")
    lines.append(f"size: {_human_size(size)}")
    return "\n".join(lines)


def _sqlite_counts(path: str) -> tuple[int, int]:
    """(fresh, total) stored answers; (0, 0) for a file requests-cache never initialised."""
    connection = backends.connect(path, readonly=True)
    try:
        return count_responses(connection, round(time.time()))
    finally:
        connection.close()


def _sqlite_clear(path: str) -> int:
    if not os.path.exists(path):
        return 0
    try:
        with backends.file_lock(path + ".lock"):
            connection = backends.connect(path)
            try:
                return delete_responses(connection)
            finally:
                connection.close()
    except sqlite3.OperationalError as exc:
        raise RewriterError(f"cannot clear the probe cache {path}: {exc}") from None
    except sqlite3.DatabaseError:
        # Corrupt: nothing readable to forget; removing the file is what "clear" means.
        backends.remove_sqlite(path)
        return 0
    except OSError as exc:
        raise RewriterError(f"cannot clear the probe cache {path}: {exc.strerror}") from None


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
