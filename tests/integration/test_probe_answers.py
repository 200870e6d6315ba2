"""Where a render's probe answers come from (`rewriter.probe.answers`): the cache, then
the registries, and back into the cache; offline without the network; a hung cache
bounded by the deadline. Against a stub registry on loopback (tests/support/registries.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import by_repository, stub_settings
from support.registries import Route, StubRegistry, stub_registry

from rewriter import probe
from rewriter.decide import OFFLINE
from rewriter.probe.cache import write as probe_cache
from rewriter.probe.cache.spec import CacheSpec, parse_spec
from rewriter.probe.verdict import ProbeResult, Verdict
from rewriter.reference import ImageRef

ROUTES = {
    "/v2/": Route(200),
    "/v2/team/public/manifests/1.0": Route(200),
    "/v2/team/private/manifests/1.0": Route(401, {"WWW-Authenticate": 'Basic realm="stub"'}),
}


@pytest.fixture
def stub() -> Iterator[StubRegistry]:
    with stub_registry(ROUTES, default=Route(404)) as registry:
        yield registry


def images(stub: StubRegistry) -> list[ImageRef]:
    return [ImageRef.parse(f"{stub.domain}/team/{name}:1.0") for name in ("public", "private")]


def test_the_registries_answer_then_the_cache(stub: StubRegistry, tmp_path: Path) -> None:
    spec = parse_spec(str(tmp_path / "probes.sqlite"))
    warnings: list[str] = []

    first = probe.answers(images(stub), stub_settings(stub), spec, 3600, warnings.append)
    asked = len(stub.requests())
    second = probe.answers(images(stub), stub_settings(stub), spec, 3600, warnings.append)

    assert by_repository(first) == {
        "team/public": ProbeResult(Verdict.PUBLIC, "HTTP 200"),
        "team/private": ProbeResult(Verdict.PRIVATE, "401 Basic challenge"),
    }
    assert asked == 3  # one ping, two manifests
    assert len(stub.requests()) == asked
    assert by_repository(second) == {
        "team/public": ProbeResult(Verdict.PUBLIC, "HTTP 200", cached=True),
        "team/private": ProbeResult(Verdict.PRIVATE, "401 Basic challenge", cached=True),
    }
    assert warnings == []


def test_a_cache_path_without_suffix_is_read_where_it_was_written(
    stub: StubRegistry, tmp_path: Path
) -> None:
    # requests-cache writes `probes.sqlite` for `probes`: the reader must look there too.
    spec = parse_spec(str(tmp_path / "probes"))
    assert spec.location == str(tmp_path / "probes.sqlite")
    probe.answers(images(stub), stub_settings(stub), spec, 3600, print)
    asked = len(stub.requests())
    second = probe.answers(images(stub), stub_settings(stub), parse_spec(str(tmp_path / "probes")), 3600, print)
    assert len(stub.requests()) == asked  # answered from the cache
    assert all(answer.cached for answer in second.values())
    assert (tmp_path / "probes.sqlite").is_file() and not (tmp_path / "probes").exists()


def test_offline_sends_nothing_and_creates_no_cache(stub: StubRegistry, tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    denied = stub_settings(stub, deny=("other.example",))
    refused = ImageRef.parse("other.example/team/app:1.0")

    answers = probe.answers([*images(stub), refused], denied, parse_spec(str(cache)), 3600, print, True)

    assert set(answers.values()) == {
        ProbeResult(Verdict.UNKNOWN, OFFLINE),
        ProbeResult(Verdict.UNKNOWN, "probe denied by --probe-deny 'other.example'"),
    }
    assert answers[refused.probe_key].detail.startswith("probe denied")
    assert stub.requests() == []
    assert not cache.exists()


def test_no_ttl_stores_nothing(stub: StubRegistry, tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    probe.answers(images(stub), stub_settings(stub), parse_spec(str(cache)), 0, print)
    assert not cache.exists()


def test_a_cache_that_hangs_costs_the_deadline_not_more(
    stub: StubRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hang(*args: object) -> list[str]:
        time.sleep(30)
        return []

    monkeypatch.setattr(probe_cache, "store_answers", hang)
    warnings: list[str] = []
    started = time.monotonic()

    answers = probe.answers(
        images(stub),
        stub_settings(stub, deadline=1.5, started_at=started),
        parse_spec(str(tmp_path / "probes.sqlite")),
        3600,
        warnings.append,
    )

    assert time.monotonic() - started < 2.5
    assert {answer.verdict for answer in answers.values()} == {Verdict.PUBLIC, Verdict.PRIVATE}
    assert warnings == ["probe cache: answers not stored by the deadline"]


def test_an_unusable_cache_is_said_and_the_answers_stand(
    stub: StubRegistry, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    where = blocker / "probes.sqlite"
    warnings: list[str] = []

    answers = probe.answers(
        images(stub), stub_settings(stub), CacheSpec("sqlite", str(where)), 3600, warnings.append
    )

    assert {answer.verdict for answer in answers.values()} == {Verdict.PUBLIC, Verdict.PRIVATE}
    assert len(warnings) == 1
    assert warnings[0].startswith(f"probe cache {where} is unusable (")
    assert warnings[0].endswith("); answers not stored")


def test_only_answers_are_stored(stub: StubRegistry, tmp_path: Path) -> None:
    cache = tmp_path / "probes.sqlite"
    unreachable = ImageRef.parse("127.0.0.1:9/team/app:1.0")
    spec = parse_spec(str(cache))
    probe.answers([*images(stub), unreachable], stub_settings(stub), spec, 3600, print)
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone() == (2,)


def test_a_render_answered_from_the_cache_imports_no_network_stack(
    stub: StubRegistry, tmp_path: Path
) -> None:
    cache = str(tmp_path / "probes.sqlite")
    probe.answers(images(stub), stub_settings(stub), parse_spec(cache), 3600, print)
    script = (
        "import sys\n"
        "from rewriter import probe\n"
        "from rewriter.probe.policy import ProbeSettings\n"
        "from rewriter.reference import ImageRef\n"
        "from rewriter.probe.cache.spec import parse_spec\n"
        "refs = [ImageRef.parse(text) for text in sys.argv[3:]]\n"
        "settings = ProbeSettings(insecure_registries=frozenset({sys.argv[1]}))\n"
        "answers = probe.answers(refs, settings, parse_spec(sys.argv[2]), 3600, print)\n"
        "assert all(answer.cached for answer in answers.values()), answers\n"
        "heavy = {'requests', 'urllib3', 'requests_cache', 'ssl', 'socket'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, stub.domain, cache, *(ref.text for ref in images(stub))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_a_cache_that_fails_to_open_is_a_warning_not_a_traceback(
    stub: StubRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(probe_cache, "open_backend", boom)
    warnings: list[str] = []
    cache = tmp_path / "probes.sqlite"

    answers = probe.answers(images(stub), stub_settings(stub), parse_spec(str(cache)), 3600, warnings.append)

    assert {answer.verdict for answer in answers.values()} == {Verdict.PUBLIC, Verdict.PRIVATE}
    assert warnings == [
        f"probe cache {cache} cannot be opened (RuntimeError: boom); answers not stored"
    ]
    assert "Traceback" not in capfd.readouterr().err
