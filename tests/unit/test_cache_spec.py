"""Where the probe cache is (rewriter/probe/cache/spec.py): the default path, and a
Redis URL shown without its password."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewriter.probe.cache.spec import default_cache_path, redact_url

pytestmark = pytest.mark.usefixtures("isolated")


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert default_cache_path() == str(tmp_path / "c" / "rewriter" / "probes.sqlite")


@pytest.mark.parametrize("value", [None, "", "relative/dir"])
def test_default_path_falls_back_to_home(
    value: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if value is None:
        monkeypatch.delenv("XDG_CACHE_HOME")
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", value)  # relative: ignored, as XDG says
    assert default_cache_path() == str(tmp_path / "home" / ".cache" / "rewriter" / "probes.sqlite")


def test_redis_password_is_not_shown() -> None:
    port = 6379
    assert (
        redact_url(f"redis://user:hunter2@127.0.0.1:{port}/0")
        == f"redis://user:***@127.0.0.1:{port}/0"
    )
    assert redact_url(f"redis://:hunter2@127.0.0.1:{port}/0") == f"redis://:***@127.0.0.1:{port}/0"
    assert redact_url("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"
