"""requests-cache's storage format, as rewriter reads and writes it: the one module that
knows it, shared by reading (rewriter/probe/cache/read.py, without requests-cache),
writing (write.py, through requests-cache) and `cache info`/`clear` (admin.py).

Known for requests-cache 1.2 and 1.3 (pyproject.toml allows >=1.2,<2; the lock file pins
1.3.3), and checked by tests/integration/test_cache_read.py, which writes through requests-cache and
reads back without it:

- SQLite: the table `responses` (`key`, `value` the JSON below, `expires` unix time or
  NULL) and `redirects`, which the probe never fills but `clear` empties.
- Redis: the key `rewriter-probes:<key>` (requests-cache's namespace, then the key), the
  JSON as its value.
- The JSON of a `CachedResponse` (requests-cache's `json_serializer`; never pickle, so a
  cache shared through Redis cannot run code in the renderer): `status_code`, `headers`,
  `expires` and `created_at` (ISO 8601 with a time zone) are what is read back.
- Keys are rewriter's own (`answer_key`), not requests-cache's hash of the request: the
  stored response is built by hand (`cached_response`) from an `Entry`, as if the HEAD
  had been sent through requests-cache.

requests-cache itself is imported only by the functions that write (`import_requests_cache`
first, without the client libraries of backends rewriter never uses), so that reading a
warm cache never loads it, nor requests.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rewriter.probe.policy import ACCEPT

if TYPE_CHECKING:
    import sqlite3
    from datetime import datetime

    from redis import Redis
    from requests_cache.backends.base import BaseCache
    from requests_cache.backends.redis import RedisCache
    from requests_cache.backends.sqlite import SQLiteCache
    from requests_cache.models.response import CachedResponse

RESPONSES = "responses"
REDIRECTS = "redirects"
TABLES = frozenset({RESPONSES, REDIRECTS})  # what requests-cache creates in a SQLite file
REDIS_NAMESPACE = "rewriter-probes"
SQLITE_BATCH = 500  # keys per query: below SQLite's limit on bound parameters
# Clock difference tolerated between the render that stored an answer and the one that
# reads it (replicas sharing a Redis): how far in the future a creation time may be.
EXPIRY_SLACK = 60.0

# Part of every key: bump it when what decides an answer changes (the Accept header the
# probe sends, the shape of a stored answer), so that older answers are no longer read.
ANSWER_VERSION = "v1"


def answer_key(url: str) -> str:
    """The key of the stored answer for a manifest URL: exactly what decides the answer,
    the method, the URL (scheme, host, repository, reference) and, through
    ANSWER_VERSION, the Accept header. Authorization is deliberately not part of it: the
    stored answer is the final one, whatever token it took to get there. Readable, and
    no hash to compute: image references never hold quotes or spaces."""
    return f"probe-{ANSWER_VERSION} HEAD {url}"


def redis_key(key: str) -> str:
    """Where requests-cache's Redis backend keeps the response stored under `key`."""
    return f"{REDIS_NAMESPACE}:{key}"


@dataclass(frozen=True)
class Entry:
    """An answer to store: the registry's final answer for a manifest URL, reduced to what
    decides and explains it (its status, and the challenge's gist or the mark of a token
    realm's refusal). Never a token, an Authorization header or any other header."""

    url: str
    status: int
    reason: str
    headers: Mapping[str, str]

    @property
    def key(self) -> str:
        return answer_key(self.url)


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """One stored manifest answer: its status and headers (names in lower case)."""

    status: int
    headers: Mapping[str, str]


# The value of a key that is there but cannot be read, told apart from a missing one.
UNREADABLE = Stored(0, {})


def parse_stored(
    value: bytes | str, now: datetime | None = None, ttl_seconds: float | None = None
) -> Stored | None:
    """A stored entry (requests-cache's JSON of a CachedResponse), or None when it does
    not parse, is not the shape the probe writes, or has expired by `now` (or claims an
    expiry further than `ttl_seconds` from `now`: see `still_fresh`)."""
    parsed = parse_value(value)
    if parsed is None:
        return None
    stored, expires, created = parsed
    return stored if now is None or still_fresh(expires, now, ttl_seconds, created) else None


def parse_value(value: bytes | str) -> tuple[Stored, object, object] | None:
    """The entry, its `expires` and `created_at` as stored, or None when it is not the
    probe's shape."""
    try:
        data = json.loads(value)
        status = data["status_code"]
        headers = data.get("headers") or {}
        if not isinstance(status, int) or not isinstance(headers, dict):
            return None
        stored = Stored(status, {str(k).lower(): str(v) for k, v in headers.items()})
        return stored, data.get("expires"), data.get("created_at")
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def still_fresh(
    expires: object, now: datetime, ttl_seconds: float | None = None, created: object = None
) -> bool:
    """Whether an entry expiring at `expires` is still to be believed at `now`. Given the
    TTL (--cache-ttl), its expiry is capped at its `created` time + TTL, and a creation
    time in the future (beyond EXPIRY_SLACK of clock difference) or missing is not
    believed: a forged expiry in 2099 then holds no longer than an answer the probe
    stored itself, and a lowered TTL applies to answers already stored."""
    # Imported here: a warm render imports nothing it does not use.
    from datetime import datetime, timedelta

    if not isinstance(expires, str):
        return False
    try:
        when = datetime.fromisoformat(expires)
        if ttl_seconds is not None:
            if not isinstance(created, str):
                return False
            born = datetime.fromisoformat(created)
            if born > now + timedelta(seconds=EXPIRY_SLACK):
                return False
            when = min(when, born + timedelta(seconds=max(ttl_seconds, 0.0)))
        return when > now
    except (ValueError, TypeError, OverflowError):  # not a date, or one without a time zone
        return False


def aware_now() -> datetime:
    """Now, with the local time zone: what stored ISO dates compare with."""
    from datetime import datetime

    return datetime.now().astimezone()


# -- SQLite, on a connection of rewriter's own --------------------------------------------


def tables(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {str(name) for (name,) in rows}


def has_responses(connection: sqlite3.Connection) -> bool:
    """Whether requests-cache created its table of responses (a file it never
    initialised holds no answers)."""
    return bool(
        connection.execute(
            f"SELECT name FROM sqlite_master WHERE type='table' AND name='{RESPONSES}'"
        ).fetchall()
    )


def select_unexpired(
    connection: sqlite3.Connection, keys: Sequence[str], unix_now: int
) -> list[tuple[str, bytes | str]]:
    """(key, JSON) of the responses stored under `keys` that requests-cache has not
    expired by `unix_now`, in batches of SQLITE_BATCH keys."""
    found: list[tuple[str, bytes | str]] = []
    for start in range(0, len(keys), SQLITE_BATCH):
        batch = keys[start : start + SQLITE_BATCH]
        rows = connection.execute(
            f"SELECT key, value FROM {RESPONSES}"  # placeholders only
            f" WHERE key IN ({', '.join('?' * len(batch))}) AND expires > ?",
            (*batch, unix_now),
        ).fetchall()
        found += [(str(key), value) for key, value in rows]
    return found


def count_responses(connection: sqlite3.Connection, unix_now: int) -> tuple[int, int]:
    """(unexpired, total) responses; (0, 0) for a file requests-cache never initialised."""
    if RESPONSES not in tables(connection):
        return 0, 0
    (total,) = connection.execute(f"SELECT count(*) FROM {RESPONSES}").fetchone()
    (unexpired,) = connection.execute(
        f"SELECT count(*) FROM {RESPONSES} WHERE expires IS NULL OR expires > ?", (unix_now,)
    ).fetchone()
    return int(unexpired), int(total)


def delete_responses(connection: sqlite3.Connection) -> int:
    """Delete every response (and redirect) in one transaction; how many responses."""
    present = tables(connection)
    if RESPONSES not in present:
        return 0
    connection.execute("BEGIN IMMEDIATE")
    (count,) = connection.execute(f"SELECT count(*) FROM {RESPONSES}").fetchone()
    connection.execute(f"DELETE FROM {RESPONSES}")
    if REDIRECTS in present:
        connection.execute(f"DELETE FROM {REDIRECTS}")
    connection.execute("COMMIT")
    return int(count)


# -- writing, through requests-cache --------------------------------------------------------

# requests-cache's package imports the client library of every backend it supports that
# happens to be installed: boto3 for DynamoDB, pymongo for MongoDB and GridFS, redis.
# That is ~0.2 s of every cold render's start-up for a probe that stores answers in
# SQLite, or in Redis through `requests_cache.backends.redis`, imported when asked for.
_UNUSED = ("boto3", "botocore", "pymongo", "gridfs", "bson", "redis")


def import_requests_cache() -> None:
    """Import requests-cache with the libraries of its unused backends hidden (they become
    its own placeholders) and visible again right after. Every function here that uses
    requests-cache calls this first, so that this import is the first."""
    if "requests_cache" in sys.modules:
        return
    hidden = [name for name in _UNUSED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        import requests_cache  # noqa: F401
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def sqlite_backend(path: str, busy_timeout_ms: int) -> SQLiteCache:
    """requests-cache's SQLite backend for `path`: JSON, WAL mode, the busy timeout."""
    import_requests_cache()
    from requests_cache import json_serializer
    from requests_cache.backends.sqlite import SQLiteCache

    return SQLiteCache(path, serializer=json_serializer, wal=True, busy_timeout=busy_timeout_ms)


def redis_backend(connection: Redis) -> RedisCache:
    """requests-cache's Redis backend on `connection`, under REDIS_NAMESPACE."""
    import_requests_cache()
    # Imported here: requests-cache's Redis backend needs the optional redis package.
    from requests_cache import json_serializer
    from requests_cache.backends.redis import RedisCache

    # JSON, never pickle, for the responses; redirects are plain UTF-8 in requests-cache.
    return RedisCache(namespace=REDIS_NAMESPACE, connection=connection, serializer=json_serializer)


def store(backend: BaseCache, entries: Sequence[Entry], ttl_seconds: float) -> bool:
    """Store `entries`, each expiring in `ttl_seconds`, in one go (one SQLite
    transaction; a SET each in Redis); whether the last one is there afterwards
    (requests-cache swallows a failed SQLite commit, a full disk, without a word).
    Raises what the backend raises."""
    import_requests_cache()
    from requests_cache.backends.sqlite import SQLiteDict
    from requests_cache.policy import get_expiration_datetime

    expires = get_expiration_datetime(ttl_seconds)
    responses = backend.responses
    batch = responses.bulk_commit() if isinstance(responses, SQLiteDict) else None
    with batch or contextlib.nullcontext():
        for entry in entries:
            responses[entry.key] = cached_response(entry, expires)
    return bool(backend.contains(key=entries[-1].key))


def cached_response(entry: Entry, expires: datetime | None) -> CachedResponse:
    """requests-cache's record of `entry`, as if the HEAD had been sent through it (with
    the Accept header the probe sends)."""
    import_requests_cache()
    from requests.structures import CaseInsensitiveDict
    from requests_cache.models.request import CachedRequest
    from requests_cache.models.response import CachedResponse

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
