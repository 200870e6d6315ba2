"""Stored answers read without the HTTP stack: what the probe writes through requests-cache
(SQLite or Redis), `lookup` reads back straight from the store, and a render answered
entirely from the cache imports no network module at all."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.helpers import by_repository, probe_cached, stub_settings
from support.registries import Route, StubRegistry, free_port, stub_registry

from rewriter.probe.cache.format import ANSWER_VERSION, Entry, answer_key, parse_stored
from rewriter.probe.cache.read import lookup, manifest_urls
from rewriter.probe.cache.spec import CacheSpec, parse_spec
from rewriter.probe.cache.write import open_backend, store_answers
from rewriter.probe.policy import ACCEPT, ProbeSettings
from rewriter.probe.verdict import ProbeResult, Verdict
from rewriter.reference import ImageRef

ROUTES = {
    "/v2/": Route(200),
    "/v2/team/public/manifests/1.0": Route(200),
    "/v2/team/private/manifests/1.0": Route(401, {"WWW-Authenticate": 'Basic realm="stub"'}),
    "/v2/team/gone/manifests/1.0": Route(404),
    "/v2/team/busy/manifests/1.0": Route(503),
}
EXPECTED = {
    "team/public": ProbeResult(Verdict.PUBLIC, "HTTP 200", cached=True),
    "team/private": ProbeResult(Verdict.PRIVATE, "401 Basic challenge", cached=True),
    "team/gone": ProbeResult(Verdict.MISSING, "HTTP 404", cached=True),
    # never stored: unknown answers are asked again next time
}


@pytest.fixture
def stub() -> Iterator[StubRegistry]:
    with stub_registry(dict(ROUTES)) as started:
        yield started


def refs(stub: StubRegistry) -> list[ImageRef]:
    names = ("public", "private", "gone", "busy")
    return [ImageRef.parse(f"{stub.domain}/team/{name}:1.0") for name in names]


def test_what_the_probe_stores_in_sqlite_is_read_back(stub: StubRegistry, tmp_path: Path) -> None:
    cache = str(tmp_path / "probes.sqlite")
    probe_cached(refs(stub), stub_settings(stub), cache, 3600, print)
    warnings: list[str] = []

    answers, spec = lookup(
        parse_spec(cache), [r.probe_key for r in refs(stub)], stub_settings(stub), warnings.append
    )

    assert by_repository(answers) == EXPECTED
    assert spec == CacheSpec("sqlite", cache)
    assert warnings == []


# requests-cache's Redis backend calls SETEX, which redis-py 8 marks deprecated.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_what_the_probe_stores_in_redis_is_read_back(
    stub: StubRegistry, redis_server: object
) -> None:
    import redis

    url = redis_server.url  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushdb()
    probe_cached(refs(stub), stub_settings(stub), url, 3600, print)

    answers, spec = lookup(
        parse_spec(url), [r.probe_key for r in refs(stub)], stub_settings(stub), print
    )

    assert by_repository(answers) == EXPECTED
    assert spec == CacheSpec("redis", url)


def test_expired_answers_are_not_read(stub: StubRegistry, tmp_path: Path) -> None:
    cache = str(tmp_path / "probes.sqlite")
    probe_cached(refs(stub), stub_settings(stub), cache, 3600, print)
    # Make every stored answer an hour old, in the column and in the entry alike.
    connection = sqlite3.connect(cache)
    with connection:
        for key, value in connection.execute("SELECT key, value FROM responses").fetchall():
            entry = json.loads(value)
            entry["expires"] = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
            connection.execute(
                "UPDATE responses SET value = ?, expires = ? WHERE key = ?",
                (json.dumps(entry), int(datetime.now().timestamp()) - 3600, key),
            )
    connection.close()

    answers, _ = lookup(parse_spec(cache), [r.probe_key for r in refs(stub)], stub_settings(stub), print)

    assert answers == {}


def test_no_cache_file_means_no_answers_and_creates_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "nothing" / "probes.sqlite"
    key = ("quay.io", "team/app", "1.0")

    answers, spec = lookup(parse_spec(str(cache)), [key], ProbeSettings(), print)

    assert answers == {}
    assert spec.kind == "sqlite"
    assert not (tmp_path / "nothing").exists()


def test_a_corrupt_file_is_said_and_kept_for_writing(tmp_path: Path) -> None:
    """No answer, a warning, and the cache still to be written: opening it to store the
    answers rebuilds it and says so (tests/integration/test_cache_write.py)."""
    cache = tmp_path / "probes.sqlite"
    cache.write_bytes(b"this is not a database" * 100)
    warnings: list[str] = []

    answers, spec = lookup(
        parse_spec(str(cache)), [("quay.io", "team/app", "1.0")], ProbeSettings(), warnings.append
    )

    assert (answers, spec.kind) == ({}, "sqlite")
    assert warnings == [
        f"probe cache {cache} cannot be read (DatabaseError: file is not a database);"
        " asking the registries"
    ]


def test_unreadable_entries_are_said_and_asked_again(tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    key = ("quay.io", "team/app", "1.0")
    backend = open_backend(str(cache), print)
    assert backend is not None
    url = "https://quay.io/v2/team/app/manifests/1.0"
    assert store_answers(backend, [Entry(url, 200, "OK", {})], 3600) == []
    with sqlite3.connect(cache) as db:
        db.execute("UPDATE responses SET value = ?", (b"\x80garbage{not json",))
    warnings: list[str] = []

    answers, _ = lookup(parse_spec(str(cache)), [key], ProbeSettings(), warnings.append)

    assert answers == {}
    assert warnings == [
        "probe cache: 1 stored answer unreadable (not requests-cache's JSON); probing again"
    ]


def test_unreachable_redis_is_said_once_and_the_probe_goes_uncached() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    warnings: list[str] = []

    answers, spec = lookup(
        parse_spec(url), [("quay.io", "team/app", "1.0")], ProbeSettings(), warnings.append
    )

    assert answers == {}
    assert spec == CacheSpec("none", "")
    assert len(warnings) == 1
    assert warnings[0].startswith(f"probe cache {url} is unusable (")
    assert warnings[0].endswith("; probing without a cache")


def test_a_denied_registry_is_not_answered_from_the_cache(
    stub: StubRegistry, tmp_path: Path
) -> None:
    cache = str(tmp_path / "probes.sqlite")
    probe_cached(refs(stub), stub_settings(stub), cache, 3600, print)

    denied = stub_settings(stub, deny=(stub.host,))
    answers, _ = lookup(parse_spec(cache), [r.probe_key for r in refs(stub)], denied, print)

    assert answers == {}


def test_the_answer_version_moves_with_what_decides_an_answer() -> None:
    """Answers stored under another Accept header must not be read: change ACCEPT, bump
    ANSWER_VERSION (and update both here)."""
    assert ANSWER_VERSION == "v1"
    assert ACCEPT == (
        "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json,"
        " application/vnd.docker.distribution.manifest.list.v2+json,"
        " application/vnd.docker.distribution.manifest.v2+json"
    )


def test_answer_keys_and_urls() -> None:
    key = ("docker.io", "library/nginx", "1.25")
    assert manifest_urls(key) == ["https://registry-1.docker.io/v2/library/nginx/manifests/1.25"]
    assert manifest_urls(("10.0.0.1:5000", "a", "b"), {"10.0.0.1:5000"}) == [
        "https://10.0.0.1:5000/v2/a/manifests/b",
        "http://10.0.0.1:5000/v2/a/manifests/b",
    ]
    first, second = (answer_key(url) for url in manifest_urls(("r.io", "a", "b"), {"r.io"}))
    assert first == "probe-v1 HEAD https://r.io/v2/a/manifests/b"
    assert second == "probe-v1 HEAD http://r.io/v2/a/manifests/b"


@pytest.mark.parametrize(
    "value",
    [b"not json", b"[]", b'{"headers": {}}', b'{"status_code": "200"}', b'{"status_code": 200,'],
)
def test_entries_of_another_shape_are_misses(value: bytes) -> None:
    assert parse_stored(value) is None


def test_an_entry_past_its_expiry_is_a_miss() -> None:
    now = datetime.now(timezone.utc)
    entry = {"status_code": 200, "headers": {"X-A": "b"}, "expires": now.isoformat()}
    assert parse_stored(json.dumps(entry), now - timedelta(seconds=1)) is not None
    assert parse_stored(json.dumps(entry), now) is None
    assert parse_stored(json.dumps({**entry, "expires": None}), now) is None
    assert parse_stored(json.dumps(entry)).headers == {"x-a": "b"}  # type: ignore[union-attr]


def test_a_warm_render_imports_no_network_stack(stub: StubRegistry, tmp_path: Path) -> None:
    """The second render answers every image from the cache: requests, urllib3,
    requests-cache, ssl and socket are never imported (start-up is most of a small
    render's time)."""
    cache = str(tmp_path / "probes.sqlite")
    stdin = "".join(
        f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n"
        f"  containers:\n  - name: c\n    image: {ref}\n"
        # The public image only: a private one on a registry with a port cannot be proxied.
        for i, ref in enumerate(refs(stub)[:1])
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REWRITER_", "ARGOCD_"))},
        "HOME": str(tmp_path),
        "REWRITER_LICENSE_ID": "L",
    }
    args = [
        *("-m", "rewriter", "--app-slug", "acme", "--cache", cache),
        *("--insecure-registry", stub.domain),
    ]
    first = subprocess.run(
        [sys.executable, *args], input=stdin, env=env, capture_output=True, text=True
    )
    asked = len(stub.requests())
    second = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        input=stdin, env=env, capture_output=True, text=True,
    )  # fmt: skip

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert len(stub.requests()) == asked
    imported = {
        line.split("|")[-1].strip()
        for line in second.stderr.splitlines()
        if line.startswith("import time:")
    }
    network = {"requests", "urllib3", "requests_cache", "ssl", "socket", "http.client"}
    assert imported & network == set()
    assert "sqlite3" in imported


# -- a stored expiry is capped by --cache-ttl (issue 15 section 4) -----------------------------


def _forge(entry: dict[str, object], expires: datetime, created: datetime | None) -> None:
    entry["expires"] = expires.isoformat()
    if created is None:
        entry.pop("created_at", None)
    else:
        entry["created_at"] = created.isoformat()


def forge_sqlite(cache: str, expires: datetime, created: datetime | None) -> None:
    """Every stored answer PUBLIC, expiring at `expires` (column and entry alike)."""
    connection = sqlite3.connect(cache)
    with connection:
        for key, value in connection.execute("SELECT key, value FROM responses").fetchall():
            entry = json.loads(value)
            entry["status_code"], entry["headers"] = 200, {}
            _forge(entry, expires, created)
            connection.execute(
                "UPDATE responses SET value = ?, expires = ? WHERE key = ?",
                (json.dumps(entry), int(expires.timestamp()), key),
            )
    connection.close()


FORGERIES = {
    "2099, created two hours ago": (datetime(2099, 1, 1, tzinfo=timezone.utc), timedelta(hours=-2)),
    "2099, created in 2099": (datetime(2099, 1, 1, tzinfo=timezone.utc), timedelta(days=365 * 70)),
    "2099, no creation time": (datetime(2099, 1, 1, tzinfo=timezone.utc), None),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_expiry_holds_no_longer_than_the_ttl_sqlite(
    forgery: str, stub: StubRegistry, tmp_path: Path
) -> None:
    """A private image made PUBLIC until 2099 in the cache: with --cache-ttl 3600 the
    forgery is not believed, the registry is asked, and the image is private again."""
    cache = str(tmp_path / "probes.sqlite")
    probe_cached(refs(stub), stub_settings(stub), cache, 3600, print)
    expires, age = FORGERIES[forgery]
    forge_sqlite(cache, expires, None if age is None else datetime.now(timezone.utc) + age)
    keys = [r.probe_key for r in refs(stub)]

    uncapped, _ = lookup(parse_spec(cache), keys, stub_settings(stub), print)
    assert {a.verdict for a in uncapped.values()} == {Verdict.PUBLIC}  # what it was today

    capped, _ = lookup(parse_spec(cache), keys, stub_settings(stub), print, ttl_seconds=3600)
    assert capped == {}
    again = by_repository(probe_cached(refs(stub), stub_settings(stub), cache, 3600, print))
    assert again["team/private"].verdict is Verdict.PRIVATE


def test_a_lowered_ttl_applies_to_answers_already_stored(
    stub: StubRegistry, tmp_path: Path
) -> None:
    cache = str(tmp_path / "probes.sqlite")
    probe_cached(refs(stub), stub_settings(stub), cache, 24 * 3600, print)  # stored for a day
    connection = sqlite3.connect(cache)
    with connection:
        for key, value in connection.execute("SELECT key, value FROM responses").fetchall():
            entry = json.loads(value)
            entry["created_at"] = (datetime.now(timezone.utc) - timedelta(minutes=10)).isoformat()
            connection.execute(
                "UPDATE responses SET value = ? WHERE key = ?", (json.dumps(entry), key)
            )
    connection.close()
    keys = [r.probe_key for r in refs(stub)]

    assert lookup(parse_spec(cache), keys, stub_settings(stub), print, ttl_seconds=300)[0] == {}
    held, _ = lookup(parse_spec(cache), keys, stub_settings(stub), print, ttl_seconds=3600)
    assert by_repository(held) == EXPECTED


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_expiry_holds_no_longer_than_the_ttl_redis(
    forgery: str, stub: StubRegistry, redis_server: object
) -> None:
    import redis

    url = redis_server.url  # type: ignore[attr-defined]
    client = redis.Redis.from_url(url)
    client.flushdb()
    probe_cached(refs(stub), stub_settings(stub), url, 3600, print)
    expires, age = FORGERIES[forgery]
    for name in client.scan_iter("rewriter-probes:*"):
        entry = json.loads(client.get(name) or b"")
        entry["status_code"], entry["headers"] = 200, {}
        _forge(entry, expires, None if age is None else datetime.now(timezone.utc) + age)
        client.set(name, json.dumps(entry))
    keys = [r.probe_key for r in refs(stub)]

    uncapped, _ = lookup(parse_spec(url), keys, stub_settings(stub), print)
    assert {a.verdict for a in uncapped.values()} == {Verdict.PUBLIC}
    assert lookup(parse_spec(url), keys, stub_settings(stub), print, ttl_seconds=3600)[0] == {}
    again = by_repository(probe_cached(refs(stub), stub_settings(stub), url, 3600, print))
    assert again["team/private"].verdict is Verdict.PRIVATE
    client.flushdb()
