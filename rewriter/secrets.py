"""The dockerconfigjson pull Secrets: one per namespace that needs one (SPEC section 5)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "rewriter"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
HELM_HOOK = "helm.sh/hook"
HELM_HOOK_WEIGHT = "helm.sh/hook-weight"
HELM_HOOK_DELETE_POLICY = "helm.sh/hook-delete-policy"


@dataclass(slots=True)
class Consumers:
    """What the workloads of one namespace that need the secret say about ordering."""

    sync_waves: list[int] = field(default_factory=list)
    hook_weights: list[int] = field(default_factory=list)

    def note(self, annotations: dict[str, str]) -> None:
        # Argo CD puts a resource without the annotation in wave 0: it counts too, or a
        # wave-5 consumer would hold the Secret back from an unannotated one.
        self.sync_waves.append(_int(annotations.get(SYNC_WAVE)) or 0)
        if HELM_HOOK in annotations:
            self.hook_weights.append(_int(annotations.get(HELM_HOOK_WEIGHT)) or 0)


def license_credentials(hosts: Iterable[str], license_id: str) -> tuple[tuple[str, str], ...]:
    """The proxy and vendor registry take the license ID, with the literal user name."""
    return tuple((host, f"LICENSE_ID:{license_id}") for host in hosts)


def dockerconfigjson(credentials: Iterable[tuple[str, str]]) -> str:
    """The `.dockerconfigjson` value for (host, "user:password") pairs."""
    auths = {host: {"auth": base64.b64encode(pair.encode()).decode()} for host, pair in credentials}
    return json.dumps({"auths": auths}, separators=(",", ":"))


def secret_document(
    name: str, namespace: str | None, config_json: str, consumers: Consumers | None
) -> str:
    """One Secret as a YAML document (without the leading `---`)."""
    metadata: dict[str, object] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {MANAGED_BY_LABEL: MANAGED_BY}
    annotations = _ordering(consumers) if consumers is not None else {}
    if annotations:
        metadata["annotations"] = annotations
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config_json.encode()).decode()},
    }
    return yaml.dump(secret, Dumper=yaml.CSafeDumper, sort_keys=False, width=1 << 20)


def _ordering(consumers: Consumers) -> dict[str, str]:
    """Make the Secret exist before its first consumer, under Argo CD and under Helm."""
    annotations: dict[str, str] = {}
    wave = min(consumers.sync_waves, default=0)
    if wave != 0:  # wave 0 is where an unannotated Secret goes anyway
        # Kind ordering inside a wave already puts Secrets before workloads.
        annotations[SYNC_WAVE] = str(wave)
    if consumers.hook_weights:
        # A hook's pod starts before the release's resources exist, so the Secret must be
        # a hook too, weighted before every consumer (as KOTS does).
        annotations[HELM_HOOK] = "pre-install,pre-upgrade"
        annotations[HELM_HOOK_WEIGHT] = str(min(consumers.hook_weights) - 1)
        annotations[HELM_HOOK_DELETE_POLICY] = "before-hook-creation"
    return annotations


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
