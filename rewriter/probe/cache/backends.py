"""Opening the cache's two backends safely, for reading, writing and `cache info`/`clear`
alike: a SQLite file that is this user's own and no symbolic link, reached within a busy
timeout and locked while it is rebuilt; a Redis client that answers in time and never
shows its password.

What is stored in them, and how, is rewriter/probe/cache/format.py's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

BUSY_TIMEOUT_MS = 10_000  # how long a render waits for another render's write
REDIS_TIMEOUT = 2.0  # seconds, to connect to and to hear from Redis
# The Redis password, kept out of the --cache URL (and so out of argv, the environment's
# option values and every message): read here, at the edge, and only here.
REDIS_PASSWORD_VARIABLE = "REWRITER_CACHE_PASSWORD"


class Unusable(Exception):
    """The cache cannot be used; str() says why, for the warning."""


class Untrusted(Unusable):
    """A SQLite cache file that must not be read (`sqlite_refusal`). `rebuild`: it is
    this user's own file, only too open, and the writer starts it anew (0600)."""

    def __init__(self, reason: str, rebuild: bool) -> None:
        super().__init__(reason)
        self.rebuild = rebuild


# -- Redis ------------------------------------------------------------------------------


def redis_connection(url: str) -> Redis:
    """A client for `url`, answering within REDIS_TIMEOUT, that has answered a PING. The
    password is the URL's (`redis://:pw@host`) or else $REWRITER_CACHE_PASSWORD's; it
    never appears in what this raises."""
    try:
        import redis
    except ImportError:
        raise Unusable("the 'redis' Python package is not installed") from None
    password = os.environ.get(REDIS_PASSWORD_VARIABLE) or None
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            password=password,
        )
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise Unusable(_without_secrets(f"{type(exc).__name__}: {exc}", url, password)) from None
    return client


def _without_secrets(text: str, url: str, password: str | None) -> str:
    """`text` with the URL's userinfo and `password` masked, should a client quote them."""
    secrets = [password or "", url.partition("://")[2].rpartition("@")[0]]
    secrets += [part for part in secrets[1].split(":") if len(part) >= 3]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# -- SQLite ------------------------------------------------------------------------------


def sqlite_refusal(path: str) -> str | None:
    """Why the SQLite cache at `path` must not be read, or None (also for no file yet).
    A forged answer there can keep a private image unproxied, so the file must be this
    user's own, not writable by group or others, and the path itself, never a symbolic
    link to somewhere else."""
    try:
        info = os.lstat(path)
    except OSError:
        return None  # no file yet, or a path that cannot be one: said when it is opened
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link; give the file's own path"
    for suffix in SQLITE_COMPANIONS:  # SQLite opens these by name, following links
        if os.path.islink(path + suffix):
            return f"its {suffix} file is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    if info.st_mode & 0o022:
        return f"{LOOSE} (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


LOOSE = "writable by group or others"
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def sqlite_uri(path: str, **params: str) -> str:
    """An SQLite URI for the file at `path`: `%`, `?` and `#` escaped (they would end the
    path), and `nofollow=1` (a symbolic link is not opened)."""
    quoted = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    query = "&".join(f"{name}={value}" for name, value in {**params, "nofollow": "1"}.items())
    return f"file:{quoted}?{query}"


def connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    """A connection of our own (autocommit, busy timeout), never through a link."""
    uri = sqlite_uri(path, mode="ro") if readonly else sqlite_uri(path)
    connection = sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
    )
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return connection


def remove_sqlite(path: str) -> None:
    for suffix in ("", *SQLITE_COMPANIONS):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
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
