"""The probe cache's backends, through requests-cache: opening one to store a render's
answers, and `rewriter cache info` / `clear`.

What is stored, and when, is the probe's decision (rewriter/probe.py): the final
manifest answer of each image, built by hand as a `store.Entry` (its status and the
challenge's gist, nothing else), under its own key (`store.answer_key`). Renders read
answers back without requests-cache (rewriter/store.py); rewriter/answers.py opens the
backend here in a thread of its own while the probes start, and stores every answer of
a render in one go. Never pickle: JSON for both backends, so that a cache shared through
Redis cannot run code in the renderer.

`--cache` values:

- an absolute path (`~` is expanded): SQLite in WAL mode with a busy timeout, so renders
  running at once on one file (Argo CD runs many) wait for each other instead of failing;
  the file is created 0600 in a 0700 directory, never through a symbolic link. A file
  another user owns, or a symbolic link, is neither read nor written; one of this
  user's own writable by group or others is not read, and started anew (what it holds
  could be anyone's). A *relative* path is an error: Argo CD
  and kustomize run the renderer in a temporary directory, so a relative cache would
  silently be a new, empty cache on every render.
- `redis://...` / `rediss://...`: one cache shared by several repo-server replicas.
- `none`: no cache.

A cache that cannot be used (corrupt file, unwritable directory, Redis down) is reported
as a warning and the render goes on uncached: a cache is an optimisation, never a reason
to fail. A corrupt SQLite file is deleted and rebuilt under a lock file, so that two
renders discovering it together do not delete each other's fresh cache.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from requests.structures import CaseInsensitiveDict

from rewriter.cachelib import (
    BaseCache,
    CachedRequest,
    CachedResponse,
    SQLiteCache,
    SQLiteDict,
    get_expiration_datetime,
    json_serializer,
)
from rewriter.errors import RewriterError
from rewriter.policy import ACCEPT
from rewriter.store import (
    BUSY_TIMEOUT_MS,
    LOOSE,
    REDIS_NAMESPACE,
    CacheSpec,
    Entry,
    Unusable,
    default_cache_path,
    parse_spec,
    redact_url,
    redis_connection,
    sqlite_refusal,
    sqlite_uri,
)

if TYPE_CHECKING:
    from redis import Redis
    from requests_cache.backends.redis import RedisCache

__all__ = [
    "Unusable",
    "cache_clear",
    "cache_info",
    "default_cache_path",
    "open_backend",
    "store_answers",
]


def open_backend(spec: str | CacheSpec, warn: Callable[[str], None]) -> BaseCache | None:
    """The backend to store answers in, or None for `none`. Raises Unusable when the
    cache cannot be used (`warn` hears of a corrupt file rebuilt)."""
    parsed = spec if isinstance(spec, CacheSpec) else parse_spec(spec)
    if parsed.kind == "none":
        return None
    if parsed.kind == "redis":
        return _redis_cache(redis_connection(parsed.location))
    return _sqlite_cache(parsed.location, warn)


def store_answers(backend: BaseCache, entries: Sequence[Entry], ttl_seconds: float) -> list[str]:
    """Store `entries`, each trusted for `ttl_seconds`, in one go (one SQLite
    transaction; a SET each in Redis); the warnings, if any. Stops at the first failure:
    a cache that fails once (Redis gone, disk full) is failing for the rest."""
    if not entries or ttl_seconds <= 0:
        return []
    expires = get_expiration_datetime(ttl_seconds)
    responses = backend.responses
    batch = responses.bulk_commit() if isinstance(responses, SQLiteDict) else None
    try:
        with batch or contextlib.nullcontext():
            for entry in entries:
                responses[entry.key] = _cached_response(entry, expires)
        # requests-cache swallows a failed SQLite commit (disk full) without a word, and a
        # cache that silently stores nothing is worth a warning.
        persisted = backend.contains(key=entries[-1].key)
    except Exception as exc:
        return [f"probe cache: answers not stored ({type(exc).__name__}: {exc})"]
    if not persisted:
        return ["probe cache: answers not stored (the write did not persist)"]
    return []


def _cached_response(entry: Entry, expires: datetime | None) -> CachedResponse:
    """requests-cache's record of `entry`, as if the HEAD had been sent through it."""
    request = CachedRequest(
        method="HEAD", url=entry.url, headers=CaseInsensitiveDict({"Accept": ACCEPT})
    )
    return CachedResponse(
        status_code=entry.status,
        reason=entry.reason,
        url=entry.url,
        headers=CaseInsensitiveDict(entry.headers),
        request=request,
        expires=expires,
    )


def _sqlite_cache(path: str, warn: Callable[[str], None]) -> SQLiteCache:
    _prepare_sqlite(path, warn)
    backend = SQLiteCache(path, serializer=json_serializer, wal=True, busy_timeout=BUSY_TIMEOUT_MS)
    # requests-cache swallows a CREATE TABLE that fails (a full disk): without its tables
    # the cache would only produce a warning per image.
    try:
        connection = _connect(path, readonly=True)
        try:
            missing = {"responses", "redirects"} - _tables(connection)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise Unusable(f"{type(exc).__name__}: {exc}") from None
    if missing:
        raise Unusable(f"cannot create its tables ({', '.join(sorted(missing))}); disk full?")
    return backend


# -- Redis ------------------------------------------------------------------------------


def _redis_cache(connection: Redis) -> RedisCache:
    # Imported here: requests-cache's Redis backend needs the optional redis package.
    from requests_cache.backends.redis import RedisCache

    # JSON, never pickle, for the responses; redirects are plain UTF-8 in requests-cache.
    return RedisCache(namespace=REDIS_NAMESPACE, connection=connection, serializer=json_serializer)


# -- SQLite ------------------------------------------------------------------------------


def _prepare_sqlite(path: str, warn: Callable[[str], None]) -> None:
    """Make `path` a private, writable SQLite file in WAL mode; rebuild it if corrupt.

    Done on a connection of our own before requests-cache opens the file, because
    requests-cache retries a failed write lock forever: an unwritable file must be
    found out here, within the busy timeout.
    """
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with _file_lock(path + ".lock"):
            refused = sqlite_refusal(path)
            if refused and not refused.startswith(LOOSE):
                raise Unusable(f"not used: {refused}")
            if refused:  # this user's own, too open: what it holds cannot be trusted
                _remove_sqlite(path)
            _create_private(path)
            try:
                _check_sqlite(path)
            except sqlite3.OperationalError:
                raise  # locked, read-only, cannot open: not corruption
            except sqlite3.DatabaseError as exc:
                warn(f"probe cache {path} is corrupt ({exc}); starting a new one")
                _remove_sqlite(path)
                _create_private(path)
                _check_sqlite(path)
    except (OSError, sqlite3.Error) as exc:
        raise Unusable(f"{type(exc).__name__}: {exc}") from None


def _create_private(path: str) -> None:
    """Create the file 0600 if missing, never through a symbolic link. SQLite gives its
    -wal and -shm files the mode of the database file, so they are private too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)  # an older file, or a umask that widened nothing: tighten
    finally:
        os.close(fd)


def _connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    uri = sqlite_uri(path, mode="ro") if readonly else sqlite_uri(path)
    connection = sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
    )
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return connection


def _check_sqlite(path: str) -> None:
    """Raise sqlite3.DatabaseError for a corrupt file, OperationalError for an unusable one."""
    connection = _connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL").fetchall()
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        for table in _tables(connection) & {"responses", "redirects"}:
            connection.execute(f"SELECT count(*) FROM {table}").fetchall()
        # Proves the file and its directory (for -wal/-shm) are writable, within the
        # busy timeout, without changing anything.
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def _tables(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {str(name) for (name,) in rows}


def _remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """An exclusive flock on `path` (created 0600, never through a symbolic link), waited
    for up to the busy timeout."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        waited_until = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > waited_until:
                    raise
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- cache info / clear --------------------------------------------------------------------


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
        cache = _redis_cache(connection)
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
        return redis_connection(url)
    except Unusable as exc:
        raise RewriterError(f"cannot reach the probe cache at {redact_url(url)}: {exc}") from None


def _redis_info(url: str) -> str:
    connection = _redis_for_admin(url)
    try:
        keys = list(_redis_cache(connection).responses.keys())
        size = sum(int(connection.strlen(f"{REDIS_NAMESPACE}:{key}") or 0) for key in keys)
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
    refused = sqlite_refusal(path)
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
    connection = _connect(path, readonly=True)
    try:
        if "responses" not in _tables(connection):
            return 0, 0
        (total,) = connection.execute("SELECT count(*) FROM responses").fetchone()
        (fresh,) = connection.execute(
            "SELECT count(*) FROM responses WHERE expires IS NULL OR expires > ?",
            (round(time.time()),),
        ).fetchone()
        return int(fresh), int(total)
    finally:
        connection.close()


def _sqlite_clear(path: str) -> int:
    if not os.path.exists(path):
        return 0
    try:
        with _file_lock(path + ".lock"):
            connection = _connect(path)
            try:
                tables = _tables(connection)
                if "responses" not in tables:
                    return 0
                connection.execute("BEGIN IMMEDIATE")
                (count,) = connection.execute("SELECT count(*) FROM responses").fetchone()
                connection.execute("DELETE FROM responses")
                if "redirects" in tables:
                    connection.execute("DELETE FROM redirects")
                connection.execute("COMMIT")
                return int(count)
            finally:
                connection.close()
    except sqlite3.OperationalError as exc:
        raise RewriterError(f"cannot clear the probe cache {path}: {exc}") from None
    except sqlite3.DatabaseError:
        # Corrupt: nothing readable to forget; removing the file is what "clear" means.
        _remove_sqlite(path)
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
