"""A stand-in Kubernetes API server on loopback, just enough for `helm install --dry-run`.

Helm 3's `install --dry-run=client` still checks the cluster is reachable (GET /version),
builds its capabilities from discovery, maps every rendered resource through discovery
(KubeClient.Build) and looks each one up to refuse to adopt resources it does not own
(pkg/action/install.go, v3.21.4). It creates nothing. This server answers exactly those
reads: the version, discovery for the kinds the test charts render, and 404 for every
object, so every resource is "not there yet". Any write is answered 405 and recorded, so
a test can assert that the dry run wrote nothing.

No post-rendering happens here; Helm and rewriter are the real programs.

The served kinds start as RESOURCES and can grow (`KubeAPI.serve`): the kubectl oracle
(tests/support/kubeoracle.py) serves every kind a stream uses before kubectl decodes it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# group/version -> the resources served there: (plural, kind, namespaced).
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("configmaps", "ConfigMap", True),
        ("namespaces", "Namespace", False),
        ("pods", "Pod", True),
        ("secrets", "Secret", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("services", "Service", True),
    ],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "apiextensions.k8s.io/v1": [
        ("customresourcedefinitions", "CustomResourceDefinition", False)
    ],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


Resources = dict[str, list[tuple[str, str, bool]]]


def _resource_list(resources: Resources, group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": plural, "namespaced": namespaced, "kind": kind, "verbs": VERBS}
            for plural, kind, namespaced in resources[group_version]
        ],
    }


def _group_list(resources: Resources) -> dict[str, Any]:
    versions: dict[str, list[str]] = {}
    for group_version in resources:
        if "/" in group_version:
            group, version = group_version.split("/")
            versions.setdefault(group, []).append(version)
    groups = []
    for group, names in versions.items():
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in names]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _aggregated(resources: Resources, core: bool) -> dict[str, Any]:
    """Aggregated discovery (apidiscovery.k8s.io/v2): every group's resources in the one
    answer to /api (core) or /apis, so a client needs two requests, not one per group."""
    versions: dict[str, list[dict[str, Any]]] = {}
    for group_version, kinds in resources.items():
        group, _, version = group_version.rpartition("/")
        if (group == "") != core:
            continue
        versions.setdefault(group, []).append({
            "version": version,
            "freshness": "Current",
            "resources": [
                {"resource": plural, "singularResource": kind.lower(), "verbs": VERBS,
                 "scope": "Namespaced" if namespaced else "Cluster",
                 "responseKind": {"group": group, "version": version, "kind": kind}}
                for plural, kind, namespaced in kinds
            ],
        })  # fmt: skip
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [{"metadata": {"name": g}, "versions": v} for g, v in versions.items()],
    }


def _not_found(path: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
            "message": f"{path} not found", "code": 404}  # fmt: skip


@dataclass
class KubeAPI:
    server: ThreadingHTTPServer
    kubeconfig: Path
    requests: list[tuple[str, str]] = field(default_factory=list)
    resources: Resources = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, group_version: str, plural: str, kind: str, namespaced: bool) -> None:
        """Add a kind to discovery (no-op if served). The table only grows, so a client
        whose discovery cache predates it finds it on its refresh after a miss."""
        with self.lock:
            served = self.resources.setdefault(group_version, [])
            if all(k != kind for _, k, _ in served):
                served.append((plural, kind, namespaced))

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests if method != "GET"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(directory: Path, namespace: str | None = None, aggregated: bool = False) -> KubeAPI:
    """Serve on 127.0.0.1 (a free port); write a kubeconfig for it into `directory`.

    `namespace` is the context's namespace: what kubectl writes into a namespaced object
    that has none (kubectl's default is "default"). `aggregated` answers aggregated
    discovery to clients that ask for it: with many groups, legacy discovery's request per
    group runs into client-go's client-side throttling (about a second per refresh)."""
    requests: list[tuple[str, str]] = []
    resources: Resources = {gv: list(kinds) for gv, kinds in RESOURCES.items()}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: dict[str, Any], content_type: str = "") -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            # Plain JSON: client-go then falls back from aggregated to legacy discovery.
            self.send_header("Content-Type", content_type or "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            requests.append(("GET", path))
            with lock:
                core = [gv for gv in resources if "/" not in gv]
                wants_aggregated = aggregated and "apidiscovery.k8s.io" in self.headers.get(
                    "Accept", ""
                )
                if path in ("/api", "/apis") and wants_aggregated:
                    self._answer(200, _aggregated(resources, path == "/api"), AGGREGATED)
                elif path == "/version":
                    self._answer(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                                       "platform": "linux/amd64"})  # fmt: skip
                elif path == "/api":
                    self._answer(200, {"kind": "APIVersions", "versions": core,
                                       "serverAddressByClientCIDRs": []})  # fmt: skip
                elif path == "/apis":
                    self._answer(200, _group_list(resources))
                elif path.startswith("/api/") and path.count("/") == 2 and path[5:] in core:
                    self._answer(200, _resource_list(resources, path[5:]))
                elif path.startswith("/apis/") and path.count("/") == 3 and path[6:] in resources:
                    self._answer(200, _resource_list(resources, path[6:]))
                else:
                    self._answer(404, _not_found(path))

        def _refuse(self) -> None:
            requests.append((self.command, self.path.split("?")[0]))
            self._answer(405, _not_found(self.path))

        do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the requests are recorded instead

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll: stop() waits up to one interval for the loop to notice.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    port = server.server_address[1]
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "users:\n- name: fake\n  user: {}\n"
        "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
        + (f"    namespace: {namespace}\n" if namespace else "")
        + "current-context: fake\n"
    )
    return KubeAPI(server, kubeconfig, requests, resources, lock)
