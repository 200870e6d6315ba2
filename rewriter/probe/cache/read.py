"""Where probe answers are kept (`--cache`), and reading them without the HTTP stack.

Answers are written through requests-cache (rewriter/cache.py), one `Entry` per manifest
URL under `answer_key(url)`: in SQLite the `responses` table (`key`, `value` JSON,
`expires` unix time), in Redis the key `rewriter-probes:<key>` (the JSON). `lookup`
reads them straight from there with `sqlite3` or a Redis client, in one query: a render
whose images are all answered in the cache then never imports requests, urllib3 or
requests-cache, which together cost more start-up than the render itself. The format is
requests-cache's; tests/test_store.py writes through requests-cache and reads back
through `lookup`, so a change of format shows there.

Nothing here fails a render: no file yet, no table or an expired answer is a miss; an
entry that does not parse is a miss with a warning, and so is a cache that cannot be
read at all (rewriter/cache.py then rebuilds a corrupt file when it opens it to write).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from rewriter.errors import RewriterError
from rewriter.policy import ProbeSettings, api_host, registry_refusal, stored_answer
from rewriter.verdict import ProbeKey, ProbeResult

if TYPE_CHECKING:
    from datetime import datetime

    from redis import Redis

BUSY_TIMEOUT_MS = 10_000  # how long a render waits for another render's write
REDIS_TIMEOUT = 2.0  # seconds, to connect to and to hear from Redis
REDIS_NAMESPACE = "rewriter-probes"
# The Redis password, kept out of the --cache URL (and so out of argv, the environment's
# option values and every message): read here, at the edge, and only here.
REDIS_PASSWORD_VARIABLE = "REWRITER_CACHE_PASSWORD"
# Clock difference tolerated between the render that stored an answer and the one that
# reads it (replicas sharing a Redis): how far in the future a creation time may be.
EXPIRY_SLACK = 60.0
SQLITE_BATCH = 500  # keys per query: below SQLite's limit on bound parameters


def default_cache_path() -> str:
    """$XDG_CACHE_HOME/rewriter/probes.sqlite, else ~/.cache/rewriter/probes.sqlite."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says relative values are to be ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "rewriter", "probes.sqlite"))


@dataclass(frozen=True)
class CacheSpec:
    kind: str  # "sqlite", "redis" or "none"
    location: str  # absolute path or URL; "" for none


def parse_spec(spec: str) -> CacheSpec:
    """A `--cache` value: an absolute path, a redis:// or rediss:// URL, or none."""
    text = spec.strip()
    if text.lower() == "none":
        return CacheSpec("none", "")
    if text.startswith(("redis://", "rediss://")):
        return CacheSpec("redis", text)
    if "://" in text:
        raise RewriterError(f"--cache {spec!r}: only redis:// and rediss:// URLs are supported")
    path = os.path.expanduser(text)
    if not text or not os.path.isabs(path):
        raise RewriterError(
            f"--cache {spec!r}: give an absolute path, a redis:// URL or 'none' "
            "(renders under Argo CD and kustomize run in a temporary directory, "
            "so a relative cache would start empty every time)"
        )
    path = os.path.normpath(path)
    if not PurePath(path).suffix:
        # requests-cache, which writes the file, adds `.sqlite` to a name without a
        # suffix: the reader, `cache info` and `cache clear` must name that same file.
        path += ".sqlite"
    return CacheSpec("sqlite", path)


class Unusable(Exception):
    """The cache cannot be used; str() says why, for the warning."""


class Untrusted(Unusable):
    """A SQLite cache file that must not be read (`sqlite_refusal`). `rebuild`: it is
    this user's own file, only too open, and the writer starts it anew (0600)."""

    def __init__(self, reason: str, rebuild: bool) -> None:
        super().__init__(reason)
        self.rebuild = rebuild


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


def redact_url(url: str) -> str:
    """A Redis URL without its password, for display."""
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ':'}***@{host}"


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


def manifest_urls(key: ProbeKey, insecure: Iterable[str] = ()) -> list[str]:
    """Where the answer for `key` may be stored: HTTPS, then plain HTTP for a registry
    the user allowed it for (the probe tries them in that order too)."""
    registry, repository, reference = key
    schemes = ("https", "http") if registry in insecure else ("https",)
    path = f"/v2/{repository}/manifests/{reference}"
    return [f"{scheme}://{api_host(registry)}{path}" for scheme in schemes]


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
    expiry further than `ttl_seconds` from `now`: see `_fresh`)."""
    parsed = _parse(value)
    if parsed is None:
        return None
    stored, expires, created = parsed
    return stored if now is None or _fresh(expires, now, ttl_seconds, created) else None


def _parse(value: bytes | str) -> tuple[Stored, object, object] | None:
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


def _fresh(
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


def _now() -> datetime:
    from datetime import datetime

    return datetime.now().astimezone()


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


def read_sqlite(
    path: str, keys: Sequence[str], ttl_seconds: float | None = None
) -> dict[str, Stored]:
    """The fresh answers stored under `keys` in the SQLite cache at `path` (UNREADABLE for
    one that does not parse); with `ttl_seconds`, each expiry capped at its creation + TTL
    (see `_fresh`). Creates nothing: no file yet means no answers. Raises
    Unusable for a file that must not be read (`sqlite_refusal`), sqlite3.Error for one
    that cannot be."""
    refused = sqlite_refusal(path)
    if refused:
        raise Untrusted(refused, rebuild=refused.startswith(LOOSE))
    if not keys or not os.path.exists(path):
        return {}
    # Read-write without create: a read-only connection to a WAL database fails when its
    # -shm file is missing, which it is after the last writer closed.
    connection = sqlite3.connect(
        sqlite_uri(path, mode="rw"), uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
    )
    try:
        tables = connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='responses'"
        ).fetchall()
        if not tables:
            return {}
        found: dict[str, Stored] = {}
        now = int(time.time())
        capped_at = None if ttl_seconds is None else _now()
        for start in range(0, len(keys), SQLITE_BATCH):
            batch = keys[start : start + SQLITE_BATCH]
            rows = connection.execute(
                f"SELECT key, value FROM responses"  # placeholders only
                f" WHERE key IN ({', '.join('?' * len(batch))}) AND expires > ?",
                (*batch, now),
            ).fetchall()
            for key, value in rows:
                parsed = _parse(value)
                if parsed is None:
                    found[str(key)] = UNREADABLE
                elif capped_at is None or _fresh(parsed[1], capped_at, ttl_seconds, parsed[2]):
                    found[str(key)] = parsed[0]
        return found
    finally:
        connection.close()


def read_redis(
    client: Redis, keys: Sequence[str], ttl_seconds: float | None = None
) -> dict[str, Stored]:
    """The fresh answers stored under `keys` in Redis (one MGET), UNREADABLE for one that
    does not parse. Entries outlive their expiry there by requests-cache's TTL offset, so
    the stored expiry is checked, and with `ttl_seconds` capped (see `_fresh`)."""
    if not keys:
        return {}
    values: list[Any] = client.mget([f"{REDIS_NAMESPACE}:{key}" for key in keys])
    now = _now()
    found: dict[str, Stored] = {}
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue
        parsed = _parse(value)
        if parsed is None:
            found[key] = UNREADABLE
        elif _fresh(parsed[1], now, ttl_seconds, parsed[2]):
            found[key] = parsed[0]
    return found


def lookup(
    spec: CacheSpec,
    keys: Iterable[ProbeKey],
    settings: ProbeSettings,
    warn: Callable[[str], None],
    ttl_seconds: float | None = None,
) -> tuple[dict[ProbeKey, ProbeResult], CacheSpec]:
    """The answers the cache holds for `keys`, and the cache the probe should use next:
    `spec`, or none when it cannot be reached or must not be read (Redis down, a SQLite
    file another user could have written: said once, here, rather than once more when
    it is opened to write). With `ttl_seconds` (--cache-ttl), no stored answer holds
    longer than that after it was stored, whatever expiry it claims.

    A key whose registry the flags deny is never answered from the cache: the probe
    refuses it, whatever the cache holds, so that the flags alone decide the output.
    """
    keys = list(keys)
    refused = {
        registry: registry_refusal(registry, settings) is not None
        for registry in {key[0] for key in keys}
    }
    wanted: dict[str, ProbeKey] = {}
    for key in keys:
        if refused[key[0]]:
            continue
        for url in manifest_urls(key, settings.insecure_registries):
            wanted.setdefault(answer_key(url), key)
    if spec.kind == "none" or not wanted:
        return {}, spec
    try:
        if spec.kind == "sqlite":
            stored = read_sqlite(spec.location, list(wanted), ttl_seconds)
        else:
            stored = read_redis(redis_connection(spec.location), list(wanted), ttl_seconds)
    except Untrusted as exc:
        if not exc.rebuild:
            warn(f"probe cache {spec.location} is not read ({exc}); probing without a cache")
            return {}, CacheSpec("none", "")
        warn(f"probe cache {spec.location} is not read ({exc}); probing, and starting it anew")
        return {}, spec
    except (Unusable, OSError) as exc:
        where = redact_url(spec.location)
        warn(f"probe cache {where} is unusable ({exc}); probing without a cache")
        return {}, CacheSpec("none", "")
    except Exception as exc:  # a SQLite file in trouble, a Redis that failed mid-way
        # Kept for writing: rewriter/cache.py diagnoses the file (and rebuilds a corrupt
        # one) when it opens it.
        where = redact_url(spec.location)
        warn(
            f"probe cache {where} cannot be read ({type(exc).__name__}: {exc});"
            " asking the registries"
        )
        return {}, spec
    answers: dict[ProbeKey, ProbeResult] = {}
    unreadable: set[ProbeKey] = set()
    for answer_at, key in wanted.items():  # HTTPS before plain HTTP, as the probe tries
        entry = stored.get(answer_at)
        if key in answers or entry is None:
            continue
        if entry is UNREADABLE:
            unreadable.add(key)
            continue
        answer = stored_answer(entry.status, entry.headers)
        if answer is not None:
            answers[key] = answer
    unreadable -= answers.keys()
    if unreadable:
        count = len(unreadable)
        warn(
            f"probe cache: {count} stored answer{'s' if count > 1 else ''} unreadable "
            "(not requests-cache's JSON); probing again"
        )
    return answers, spec
