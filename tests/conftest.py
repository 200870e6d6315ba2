# -- registries and Redis for the probe and cache tests (tests/registries.py) -------------
# Session-scoped: the registries take about two seconds to start and push to, so every
# test that needs one shares the same set. Imported lazily so that a machine without the
# tools (or the test extras) still runs every other test.

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from registries import RedisServer, Registries


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    """docker-registry x3 (anonymous/HTTP, htpasswd/HTTPS, token/HTTPS) on loopback."""
    import registries as loopback

    missing = loopback.missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/test installs them)")
    if not loopback.can_bind_privileged():
        pytest.skip("needs to bind ports 80 and 443 on loopback (root, or a low port start)")
    pytest.importorskip("bcrypt")
    pytest.importorskip("cryptography")
    env = loopback.start_registries(tmp_path_factory.mktemp("registries"))
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throwaway redis-server on a random loopback port, without persistence."""
    import shutil

    import registries as loopback

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/test installs it)")
    pytest.importorskip("redis")
    server = loopback.start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
