"""The probe cache: a requests-cache session on SQLite (default) or Redis, or none.

What is stored, and when, is the probe's decision (see rewriter/probe.py): it writes the
final manifest answer of each image explicitly, under its own key (`store.answer_key`),
and bypasses requests-cache's automatic caching for every request it sends; a render
reads the answers back without requests-cache (rewriter/store.py). The settings below
are still chosen so that the session could not do harm on its own: only HEAD, only
200/401/403/404, matched on URL and `Accept`, `Authorization` neither matched nor
stored, and never pickle (JSON for both backends: a cache shared through Redis must not
be able to run code in the renderer).

`--cache` values:

- an absolute path (`~` is expanded): SQLite in WAL mode with a busy timeout, so renders
  running at once on one file (Argo CD runs many) wait for each other instead of failing;
  the file is created 0600 in a 0700 directory. A *relative* path is an error: Argo CD
  and kustomize run the renderer in a temporary directory, so a relative cache would
  silently be a new, empty cache on every render.
- `redis://...` / `rediss://...`: one cache shared by several repo-server replicas.
- `none`: no cache.

A cache that cannot be used (corrupt file, unwritable directory, Redis down) is reported
through `warn` and the render goes on uncached: a cache is an optimisation, never a
reason to fail. A corrupt SQLite file is deleted and rebuilt under a lock file, so that
two renders discovering it together do not delete each other's fresh cache.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import requests
from requests.adapters import HTTPAdapter

from rewriter.cachelib import BaseCache, CachedSession, SQLiteCache, json_serializer
from rewriter.errors import RewriterError
from rewriter.store import (
    BUSY_TIMEOUT_MS,
    REDIS_NAMESPACE,
    CacheSpec,
    Unusable,
    default_cache_path,
    parse_spec,
    redact_url,
    redis_connection,
)

if TYPE_CHECKING:
    from redis import Redis
    from requests_cache.backends.redis import RedisCache

__all__ = [
    "OfflineError",
    "cache_clear",
    "cache_info",
    "default_cache_path",
    "open_session",
]

# Response headers and query parameters never stored nor matched (requests-cache redacts
# them from stored requests too). Authorization is the one that matters: the anonymous
# token of the tokened manifest HEAD.
IGNORED = ("Authorization", "Proxy-Authorization", "Cookie", "access_token", "token")
POOL_SIZE = 32  # connections kept per host: at least the default probe concurrency


class OfflineError(requests.exceptions.ConnectionError):
    """Raised instead of sending anything, by an offline session's transport."""


class _OfflineAdapter(HTTPAdapter):
    """The transport of an offline session: any request that gets this far is refused.
    The probe never sends one when offline; this makes sure of it."""

    def send(
        self, request: requests.PreparedRequest, *args: object, **kwargs: object
    ) -> requests.Response:
        raise OfflineError(f"offline: not sending {request.method} {request.url}")


def open_session(
    spec: str | CacheSpec,
    ttl_seconds: float,
    warn: Callable[[str], None],
    offline: bool = False,
) -> requests.Session:
    """A session for `probe_all`: cached per `spec`, or plain when there is no usable cache.

    With `offline`, the session answers from the cache only: it is a CachedSession with
    `only_if_cached` (an in-memory, empty one when there is no cache) whose transport
    refuses every request.
    """
    parsed = spec if isinstance(spec, CacheSpec) else parse_spec(spec)
    backend: BaseCache | None = None
    if parsed.kind != "none":
        try:
            backend = _open_backend(parsed, warn)
        except Unusable as exc:
            warn(f"probe cache {parsed.location} is unusable ({exc}); probing without a cache")
    session: requests.Session
    if backend is None and not offline:
        session = requests.Session()
    else:
        session = CachedSession(
            backend=backend if backend is not None else "memory",
            serializer=json_serializer,
            expire_after=ttl_seconds,
            allowable_methods=("HEAD",),
            allowable_codes=(200, 401, 403, 404),
            match_headers=["Accept"],
            ignored_parameters=list(IGNORED),
            cache_control=False,  # our TTL, not the registry's Cache-Control
            stale_if_error=False,  # a stale answer is no answer
            only_if_cached=offline,
        )
    session.trust_env = False  # no ~/.netrc, no environment CA or proxy: see probe.py
    session.max_redirects = 5
    adapter = (
        _OfflineAdapter()
        if offline
        else HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE)
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _open_backend(spec: CacheSpec, warn: Callable[[str], None]) -> BaseCache:
    if spec.kind == "redis":
        return _redis_cache(redis_connection(spec.location))
    _prepare_sqlite(spec.location, warn)
    backend = SQLiteCache(
        spec.location, serializer=json_serializer, wal=True, busy_timeout=BUSY_TIMEOUT_MS
    )
    # requests-cache swallows a CREATE TABLE that fails (a full disk): without its tables
    # the cache would only produce a warning per image.
    try:
        connection = _connect(spec.location, readonly=True)
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
    """Create the file 0600 if missing. SQLite gives its -wal and -shm files the mode of
    the database file, so they are private too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)  # an older file, or a umask that widened nothing: tighten
    finally:
        os.close(fd)


def _connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
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
    """An exclusive flock on `path` (created 0600), waited for up to the busy timeout."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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
    if not os.path.exists(path):
        return "\n".join([*lines, "answers: 0 (no cache file yet)"])
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
