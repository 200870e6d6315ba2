"""A stand-in Kubernetes API server on loopback, just enough for `helm install --dry-run`.

Helm 3's `install --dry-run=client` still checks the cluster is reachable (GET /version),
builds its capabilities from discovery, maps every rendered resource through discovery
(KubeClient.Build) and looks each one up to refuse to adopt resources it does not own
(pkg/action/install.go, v3.21.4). It creates nothing. This server answers exactly those
reads: the version, discovery for the kinds the test charts render, and 404 for every
object, so every resource is "not there yet". Any write is answered 405 and recorded, so
a test can assert that the dry run wrote nothing.

No post-rendering happens here; Helm and rewriter are the real programs.
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


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": plural, "namespaced": namespaced, "kind": kind, "verbs": VERBS}
            for plural, kind, namespaced in RESOURCES[group_version]
        ],
    }


def _group_list() -> dict[str, Any]:
    groups = []
    for group_version in RESOURCES:
        if "/" not in group_version:
            continue
        group, version = group_version.split("/")
        entry = {"groupVersion": group_version, "version": version}
        groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _not_found(path: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
            "message": f"{path} not found", "code": 404}  # fmt: skip


@dataclass
class KubeAPI:
    server: ThreadingHTTPServer
    kubeconfig: Path
    requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests if method != "GET"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(directory: Path) -> KubeAPI:
    """Serve on 127.0.0.1 (a free port); write a kubeconfig for it into `directory`."""
    requests: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            # Plain JSON: client-go then falls back from aggregated to legacy discovery.
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            requests.append(("GET", path))
            if path == "/version":
                self._answer(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                                   "platform": "linux/amd64"})  # fmt: skip
            elif path == "/api":
                self._answer(200, {"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": []})  # fmt: skip
            elif path == "/apis":
                self._answer(200, _group_list())
            elif path == "/api/v1":
                self._answer(200, _resource_list("v1"))
            elif path.startswith("/apis/") and path.count("/") == 3 and path[6:] in RESOURCES:
                self._answer(200, _resource_list(path[6:]))
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
        "current-context: fake\n"
    )
    return KubeAPI(server, kubeconfig, requests)
