"""rewriter/config.py: the KOTS License's spec.endpoint decides the proxy and registry
hosts as KOTS does."""

from __future__ import annotations

import pytest

from rewriter.config import endpoint_hosts

# --- spec.endpoint: KOTS pkg/docker/registry/registry_test.go -------------------------
# Test_getRegistryProxyInfoFromLicense's vectors (kots 370ae90), ported as they are.
KOTS_VECTORS = [
    ("", "proxy.replicated.com", "registry.replicated.com"),  # nil license
    ("<>invalidurl>>", "proxy.replicated.com", "registry.replicated.com"),
    (
        "protocol://user:pwd@staging.replicated.app",
        "proxy.staging.replicated.com",
        "registry.staging.replicated.com",
    ),
    (
        "protocol://user:pwd@replicated-app-user1.okteto.repldev.com",
        "registry-proxy-user1.okteto.repldev.com",
        "vendor-registry-v2-user1.okteto.repldev.com",
    ),
    ("protocol://use<<>>r:pwd@replicated-app", "proxy.replicated.com", "registry.replicated.com"),
]


@pytest.mark.parametrize(("endpoint", "proxy", "registry"), KOTS_VECTORS)
def test_endpoint_hosts_follow_kots(endpoint: str, proxy: str, registry: str) -> None:
    assert endpoint_hosts(endpoint or None) == (proxy, registry)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://replicated.app",
        # Not KOTS's dev shape (four labels, three dashes in the first): production.
        "https://replicated-app-my-ns.okteto.repldev.com",
        "https://replicated-app.okteto.repldev.com",
        "https://a.replicated-app-user1.okteto.repldev.com",
    ],
)
def test_other_endpoints_mean_production(endpoint: str) -> None:
    assert endpoint_hosts(endpoint) == ("proxy.replicated.com", "registry.replicated.com")
