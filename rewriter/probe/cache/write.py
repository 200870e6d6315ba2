"""Storing a render's answers: opening the backend safely, in a thread of its own while
the probes start, and writing every answer of the render in one go.

What is stored, and when, is the probe's decision (rewriter/probe/registry.py): the final
manifest answer of each image, as a `format.Entry` (its status and the challenge's gist,
nothing else), under its own key (`format.answer_key`), written through requests-cache
in its format (rewriter/probe/cache/format.py). Renders read answers back without
requests-cache (read.py).

A cache that cannot be used (corrupt file, unwritable directory, Redis down) is reported
as a warning and the render goes on uncached: a cache is an optimisation, never a reason
to fail. A corrupt SQLite file is deleted and rebuilt under a lock file, so that two
renders discovering it together do not delete each other's fresh cache.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rewriter.probe.cache.backends import (
    BUSY_TIMEOUT_MS,
    LOOSE,
    Unusable,
    connect,
    file_lock,
    redis_connection,
    remove_sqlite,
    sqlite_refusal,
)
from rewriter.probe.cache.format import TABLES, Entry, redis_backend, sqlite_backend, store, tables
from rewriter.probe.cache.spec import CacheSpec, parse_spec, redact_url

if TYPE_CHECKING:
    from requests_cache.backends.base import BaseCache
    from requests_cache.backends.sqlite import SQLiteCache


def open_backend(spec: str | CacheSpec, warn: Callable[[str], None]) -> BaseCache | None:
    """The backend to store answers in, or None for `none`. Raises Unusable when the
    cache cannot be used (`warn` hears of a corrupt file rebuilt)."""
    parsed = spec if isinstance(spec, CacheSpec) else parse_spec(spec)
    if parsed.kind == "none":
        return None
    if parsed.kind == "redis":
        return redis_backend(redis_connection(parsed.location))
    return _sqlite_cache(parsed.location, warn)


def store_answers(backend: BaseCache, entries: Sequence[Entry], ttl_seconds: float) -> list[str]:
    """Store `entries`, each trusted for `ttl_seconds`, in one go (one SQLite
    transaction; a SET each in Redis); the warnings, if any. Stops at the first failure:
    a cache that fails once (Redis gone, disk full) is failing for the rest."""
    if not entries or ttl_seconds <= 0:
        return []
    try:
        persisted = store(backend, entries, ttl_seconds)
    except Exception as exc:
        return [f"probe cache: answers not stored ({type(exc).__name__}: {exc})"]
    if not persisted:
        # A cache that silently stores nothing is worth a warning.
        return ["probe cache: answers not stored (the write did not persist)"]
    return []


class Writer:
    """Opens the cache in a thread of its own as soon as it is made, then stores what it
    is given; waited for until the deadline at most (requests-cache retries a locked
    SQLite write forever, and a Redis may hang until its timeout). A write cut off by
    the process's exit is rolled back, never half-stored."""

    def __init__(self, cache: CacheSpec, ttl_seconds: float, warn: Callable[[str], None]) -> None:
        self._cache = cache
        self._ttl = ttl_seconds
        self._warn = warn
        self._warnings: list[str] = []  # the thread's, said by `store()` in the caller's
        self._entries: list[Entry] | None = None
        self._given = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-cache", daemon=True)
        self._thread.start()

    def store(self, entries: list[Entry], deadline: float) -> None:
        self._entries = entries
        self._given.set()
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            self._warnings.append("probe cache: answers not stored by the deadline")
        for message in list(self._warnings):
            self._warn(message)

    def cancel(self) -> None:
        """Store nothing: the thread ends once the cache is open."""
        self._entries = None
        self._given.set()

    def _run(self) -> None:
        where = redact_url(self._cache.location)
        try:
            backend = open_backend(self._cache, self._warnings.append)
        except Unusable as exc:
            self._warnings.append(f"probe cache {where} is unusable ({exc}); answers not stored")
            return
        except Exception as exc:  # never a traceback from this thread
            problem = f"{type(exc).__name__}: {exc}"
            self._warnings.append(
                f"probe cache {where} cannot be opened ({problem}); answers not stored"
            )
            return
        self._given.wait()
        if backend is not None and self._entries:
            self._warnings += store_answers(backend, self._entries, self._ttl)


# -- SQLite ------------------------------------------------------------------------------


def _sqlite_cache(path: str, warn: Callable[[str], None]) -> SQLiteCache:
    _prepare_sqlite(path, warn)
    backend = sqlite_backend(path, BUSY_TIMEOUT_MS)
    # requests-cache swallows a CREATE TABLE that fails (a full disk): without its tables
    # the cache would only produce a warning per image.
    try:
        connection = connect(path, readonly=True)
        try:
            missing = TABLES - tables(connection)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise Unusable(f"{type(exc).__name__}: {exc}") from None
    if missing:
        raise Unusable(f"cannot create its tables ({', '.join(sorted(missing))}); disk full?")
    return backend


def _prepare_sqlite(path: str, warn: Callable[[str], None]) -> None:
    """Make `path` a private, writable SQLite file in WAL mode; rebuild it if corrupt.

    Done on a connection of our own before requests-cache opens the file, because
    requests-cache retries a failed write lock forever: an unwritable file must be
    found out here, within the busy timeout.
    """
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with file_lock(path + ".lock"):
            refused = sqlite_refusal(path)
            if refused and not refused.startswith(LOOSE):
                raise Unusable(f"not used: {refused}")
            if refused:  # this user's own, too open: what it holds cannot be trusted
                remove_sqlite(path)
            _create_private(path)
            try:
                _check_sqlite(path)
            except sqlite3.OperationalError:
                raise  # locked, read-only, cannot open: not corruption
            except sqlite3.DatabaseError as exc:
                warn(f"probe cache {path} is corrupt ({exc}); starting a new one")
                remove_sqlite(path)
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


def _check_sqlite(path: str) -> None:
    """Raise sqlite3.DatabaseError for a corrupt file, OperationalError for an unusable one."""
    connection = connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL").fetchall()
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        for table in tables(connection) & TABLES:
            connection.execute(f"SELECT count(*) FROM {table}").fetchall()
        # Proves the file and its directory (for -wal/-shm) are writable, within the
        # busy timeout, without changing anything.
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    finally:
        connection.close()
