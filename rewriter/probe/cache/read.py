"""Reading a render's answers from the cache, without the HTTP stack.

Answers are written through requests-cache (rewriter/probe/cache/write.py), one `Entry`
per manifest URL under `answer_key(url)`, in requests-cache's format
(rewriter/probe/cache/format.py). `lookup` reads them straight from there with `sqlite3`
or a Redis client, in one query: a render whose images are all answered in the cache then
never imports requests, urllib3 or requests-cache, which together cost more start-up than
the render itself.

Nothing here fails a render: no file yet, no table or an expired answer is a miss; an
entry that does not parse is a miss with a warning, and so is a cache that cannot be
read at all (write.py then rebuilds a corrupt file when it opens it to write).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rewriter.probe.cache.backends import (
    BUSY_TIMEOUT_MS,
    LOOSE,
    Untrusted,
    Unusable,
    redis_connection,
    sqlite_refusal,
    sqlite_uri,
)
from rewriter.probe.cache.format import (
    UNREADABLE,
    Stored,
    answer_key,
    aware_now,
    has_responses,
    parse_value,
    redis_key,
    select_unexpired,
    still_fresh,
)
from rewriter.probe.cache.spec import CacheSpec, redact_url
from rewriter.probe.policy import ProbeSettings, api_host, registry_refusal, stored_answer
from rewriter.probe.verdict import ProbeKey, ProbeResult

if TYPE_CHECKING:
    from redis import Redis


def manifest_urls(key: ProbeKey, insecure: Iterable[str] = ()) -> list[str]:
    """Where the answer for `key` may be stored: HTTPS, then plain HTTP for a registry
    the user allowed it for (the probe tries them in that order too)."""
    registry, repository, reference = key
    schemes = ("https", "http") if registry in insecure else ("https",)
    path = f"/v2/{repository}/manifests/{reference}"
    return [f"{scheme}://{api_host(registry)}{path}" for scheme in schemes]


def read_sqlite(
    path: str, keys: Sequence[str], ttl_seconds: float | None = None
) -> dict[str, Stored]:
    """The fresh answers stored under `keys` in the SQLite cache at `path` (UNREADABLE for
    one that does not parse); with `ttl_seconds`, each expiry capped at its creation + TTL
    (see `format.still_fresh`). Creates nothing: no file yet means no answers. Raises
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
        if not has_responses(connection):
            return {}
        found: dict[str, Stored] = {}
        capped_at = None if ttl_seconds is None else aware_now()
        for key, value in select_unexpired(connection, keys, int(time.time())):
            parsed = parse_value(value)
            if parsed is None:
                found[key] = UNREADABLE
            elif capped_at is None or still_fresh(parsed[1], capped_at, ttl_seconds, parsed[2]):
                found[key] = parsed[0]
        return found
    finally:
        connection.close()


def read_redis(
    client: Redis, keys: Sequence[str], ttl_seconds: float | None = None
) -> dict[str, Stored]:
    """The fresh answers stored under `keys` in Redis (one MGET), UNREADABLE for one that
    does not parse. Entries outlive their expiry there by requests-cache's TTL offset, so
    the stored expiry is checked, and with `ttl_seconds` capped (see `format.still_fresh`)."""
    if not keys:
        return {}
    values: list[Any] = client.mget([redis_key(key) for key in keys])
    now = aware_now()
    found: dict[str, Stored] = {}
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue
        parsed = parse_value(value)
        if parsed is None:
            found[key] = UNREADABLE
        elif still_fresh(parsed[1], now, ttl_seconds, parsed[2]):
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
        # Kept for writing: write.py diagnoses the file (and rebuilds a corrupt
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
