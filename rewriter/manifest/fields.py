"""Where images live: the field tables and the finder that walks them.

Like kustomize's fieldspec, the places are data (paths with `[*]` for list items) and
the walk is generic; nothing here knows what will be written at those places.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rewriter.errors import RewriterError
from rewriter.manifest.document import Resource, get, get_path

Path = tuple[str, ...]  # segments; '[*]' after a segment means "every item of this list"


def parse_path(text: str) -> Path:
    """`spec.templates[*].container.image` -> ('spec', 'templates', '[*]', 'container', 'image')."""
    segments: list[str] = []
    for part in text.split("."):
        name, star, rest = part.partition("[*]")
        if not name or rest or "[" in name or "]" in name:
            raise RewriterError(f"invalid field path {text!r}: use dotted names and [*] for lists")
        segments.append(name)
        if star:
            segments.append("[*]")
    return tuple(segments)


def format_path(path: Sequence[str]) -> str:
    """The inverse of parse_path, with concrete list indexes where the walk knows them."""
    out = ""
    for seg in path:
        if seg.startswith("["):
            out += seg
        else:
            out += f".{seg}" if out else seg
    return out


@dataclass(frozen=True, slots=True)
class PodSpecField:
    """A pod spec (containers, pull secrets) at `path` in resources of matching kinds."""

    kinds: str  # glob over the kind; '*' = any kind but CRDs
    path: Path
    api_versions: str = "*"  # glob over apiVersion, for kinds that several projects use

    def applies(self, resource: Resource) -> bool:
        return _applies(self.kinds, self.api_versions, resource.kind, resource.api_version)

    def applies_to(self, kind: str, api_version: str) -> bool:
        return _applies(self.kinds, self.api_versions, kind, api_version)


class PullSecrets(enum.Enum):
    """How a custom resource's image gets its credentials when it has no secrets field."""

    WARN = "warn"  # nowhere: tell the user the cluster needs them another way
    ELSEWHERE = "elsewhere"  # pulled by a pod spec found on its own (e.g. relatedImages)


@dataclass(frozen=True, slots=True)
class ImageField:
    """A scalar image in a custom resource, and where that kind takes pull secrets."""

    kinds: str
    path: Path
    pull_secrets: Path | PullSecrets = PullSecrets.WARN  # a list of {name}, from the root
    api_versions: str = "*"

    def applies(self, resource: Resource) -> bool:
        return _applies(self.kinds, self.api_versions, resource.kind, resource.api_version)

    def applies_to(self, kind: str, api_version: str) -> bool:
        return _applies(self.kinds, self.api_versions, kind, api_version)


@functools.lru_cache(maxsize=4096)  # pure; every table entry is asked of every resource
def _applies(kinds: str, api_versions: str, kind: str, api_version: str) -> bool:
    if kinds == "*" and kind in DATA_KINDS:
        return False
    return fnmatch.fnmatchcase(kind, kinds) and fnmatch.fnmatchcase(api_version, api_versions)


# Pod specs are recognised by shape: a mapping with `containers` at one of these paths.
POD_SPECS: tuple[PodSpecField, ...] = (
    PodSpecField("Pod", ("spec",)),
    PodSpecField("*", ("spec", "template", "spec")),  # Deployment, Job, Rollout, ...
    PodSpecField("*", ("spec", "jobTemplate", "spec", "template", "spec")),  # CronJob
    PodSpecField("PodTemplate", ("template", "spec")),
)

# Inside a pod spec, relative to it.
POD_SPEC_IMAGES: tuple[Path, ...] = (
    ("containers", "[*]", "image"),
    ("initContainers", "[*]", "image"),
    ("ephemeralContainers", "[*]", "image"),
    ("volumes", "[*]", "image", "reference"),
)
POD_SPEC_PULL_SECRETS: Path = ("imagePullSecrets",)
POD_SPEC_CONTAINERS = ("containers", "initContainers", "ephemeralContainers")

NEVER_SCANNED = frozenset({"CustomResourceDefinition"})
# Objects that hold data, never a pod: the shapes (kinds '*') do not apply to them, only
# an entry that names the kind (--config), so they need not be composed at all.
DATA_KINDS = frozenset({"ConfigMap", "Secret"})


RELATED_IMAGE_PREFIX = "RELATED_IMAGE_"  # the operator convention for operand images


@dataclass(frozen=True, slots=True)
class FieldTable:
    pod_specs: tuple[PodSpecField, ...] = POD_SPECS
    images: tuple[ImageField, ...] = ()
    related_images: bool = False  # also containers' env RELATED_IMAGE_* values
    # (kind, apiVersion) when for_resource made the table: every entry applies to them
    made_for: tuple[str, str] | None = None

    def extended(
        self, pod_specs: Sequence[PodSpecField], images: Sequence[ImageField]
    ) -> FieldTable:
        return dataclasses.replace(
            self, pod_specs=self.pod_specs + tuple(pod_specs), images=self.images + tuple(images)
        )

    def for_resource(self, kind: str, api_version: str) -> FieldTable:
        """The entries that apply to resources of this kind and apiVersion: the finder
        asks every entry of every resource otherwise (millions of calls on a big chart).
        Callers keep one per kind."""
        return dataclasses.replace(
            self,
            pod_specs=tuple(e for e in self.pod_specs if e.applies_to(kind, api_version)),
            images=tuple(e for e in self.images if e.applies_to(kind, api_version)),
            made_for=(kind, api_version),
        )

    def names_kind(self, kind: str) -> bool:
        """Whether an entry names `kind` itself (a glob other than '*' matching it)."""
        entries: tuple[PodSpecField | ImageField, ...] = (*self.pod_specs, *self.images)
        return any(e.kinds != "*" and fnmatch.fnmatchcase(kind, e.kinds) for e in entries)

    def trigger_words(self) -> frozenset[bytes]:
        """Keys whose presence in a document's bytes means it may hold an image.

        A document containing none of them cannot match any path above, so it is passed
        through without being parsed.
        """
        words = {b"image", b"containers"}
        words.update(f.path[-1].encode() for f in self.images)
        return frozenset(words)


@dataclass(slots=True)
class PodSpec:
    """A pod spec found in a resource."""

    node: MappingNode
    path: str  # e.g. 'spec.template.spec'


@dataclass(slots=True)
class ImageSite:
    """One scalar that holds an image, and the pod spec (or CR field) for its pull secret."""

    resource: Resource
    node: ScalarNode
    path: str  # e.g. 'spec.template.spec.containers[0].image'
    pod_spec: PodSpec | None  # where imagePullSecrets goes; None for CR fields
    pull_secrets: Path | PullSecrets  # for CR fields: where that kind takes them


def pull_secret_target(site: ImageSite) -> tuple[MappingNode, str, str] | None:
    """The mapping and key whose list should name our Secret, if the site has one, and
    the mapping's field path."""
    if site.pod_spec is not None:
        return site.pod_spec.node, "imagePullSecrets", site.pod_spec.path
    if not isinstance(site.pull_secrets, tuple):
        return None
    holder = get_path(site.resource.node, *site.pull_secrets[:-1])
    if isinstance(holder, MappingNode):
        path = ".".join((site.resource.path, *site.pull_secrets[:-1])).lstrip(".")
        return holder, site.pull_secrets[-1], path
    return None


def find_images(resource: Resource, table: FieldTable, plain: bool = False) -> list[ImageSite]:
    """Every image site of one resource, in document order of the tables.

    `plain`: the document has no anchors, merge keys or complex keys
    (Document.plain()), so a mapping's keys are read in one pass over its entries."""
    if resource.kind in NEVER_SCANNED or resource.node is None:  # None: released
        return []
    prefix = resource.path
    sites: list[ImageSite] = []
    # Tables may overlap (a catalogue entry for a kind the shapes already cover): each
    # place is reported once. Places, not nodes: an alias or a `<<` merge puts one node
    # at several places, and each is a field the cluster reads (and edit.py must know
    # every reader of a node before it changes it).
    seen: set[str] = set()
    # A table made for this kind (for_resource) holds only entries that apply.
    ask = table.made_for != (resource.kind, resource.api_version)
    for spec_field in table.pod_specs:
        if ask and not spec_field.applies(resource):
            continue
        for spec_node, spec_path in follow(resource.node, spec_field.path, prefix):
            if not isinstance(spec_node, MappingNode) or spec_path in seen:
                continue
            lists = _image_lists(spec_node, plain)
            if lists is None:
                continue
            seen.add(spec_path)
            pod_spec = PodSpec(spec_node, spec_path)
            for first, rest in _IMAGE_STEPS:
                holder = lists.get(first)
                if holder is None:
                    continue
                for node, path in follow(holder, rest, f"{spec_path}.{first}"):
                    if isinstance(node, ScalarNode) and path not in seen:
                        seen.add(path)
                        sites.append(ImageSite(resource, node, path, pod_spec, PullSecrets.WARN))
            if table.related_images:
                for node, path in _related_images(spec_node, spec_path):
                    if path not in seen:
                        seen.add(path)
                        # The operator's operands pull these, with their own pods.
                        sites.append(ImageSite(resource, node, path, None, PullSecrets.ELSEWHERE))
    for image_field in table.images:
        if ask and not image_field.applies(resource):
            continue
        for node, path in follow(resource.node, image_field.path, prefix):
            if isinstance(node, ScalarNode) and path not in seen:
                seen.add(path)
                sites.append(ImageSite(resource, node, path, None, image_field.pull_secrets))
    return sites


# POD_SPEC_IMAGES by their first segment (a key of the pod spec) and the rest.
_IMAGE_STEPS = tuple((path[0], path[1:]) for path in POD_SPEC_IMAGES)
_IMAGE_KEYS = frozenset(first for first, _ in _IMAGE_STEPS)


def _image_lists(node: MappingNode, plain: bool) -> dict[str, Node] | None:
    """The values under the first segments of POD_SPEC_IMAGES in a mapping, by key;
    None when it is no pod spec (is_pod_spec). A pod spec has a dozen keys: one pass
    over them (`plain`) or one lookup per segment, where asking is_pod_spec and then
    following each path from the spec looked twice."""
    if plain:
        lists = {k.value: v for k, v in node.value if k.value in _IMAGE_KEYS}
    else:
        lists = {}
        for first in _IMAGE_KEYS:
            value = get(node, first)
            if value is not None:
                lists[first] = value
    for key in POD_SPEC_CONTAINERS:
        if key in lists:
            return lists
    return None


def is_pod_spec(node: Node) -> TypeGuard[MappingNode]:
    """A mapping with any of the container lists (a pod of init containers only is one)."""
    return (
        isinstance(node, MappingNode)
        and (
            get(node, "containers") is not None  # nearly always: no generator for the rest
            or any(get(node, key) is not None for key in POD_SPEC_CONTAINERS[1:])
        )
    )


def _related_images(spec: MappingNode, spec_path: str) -> Iterator[tuple[ScalarNode, str]]:
    for key in ("containers", "initContainers"):
        for env, path in follow(spec, (key, "[*]", "env", "[*]"), spec_path):
            name, value = get(env, "name"), get(env, "value")
            if (
                isinstance(name, ScalarNode)
                and str(name.value).startswith(RELATED_IMAGE_PREFIX)
                and isinstance(value, ScalarNode)
            ):
                yield value, f"{path}.value"


def follow(node: Node, path: Path, at: str) -> list[tuple[Node, str]]:
    """Follow `path` from `node` (at field path `at`), fanning out at `[*]`: each end
    node and its field path as format_path writes it.

    The finder's hot path: one loop per segment over a list (nearly always of one
    node), the field path written as it goes; no generator per level."""
    if "[*]" not in path:  # at most one node: no lists to build on the way
        here: Node | None = node
        for segment in path:
            here = get(here, segment)
            if here is None:
                return []
            at = f"{at}.{segment}" if at else segment
        return [(here, at)] if here is not None else []
    found: list[tuple[Node, str]] = [(node, at)]
    for segment in path:
        step: list[tuple[Node, str]] = []
        if segment == "[*]":
            for parent, where in found:
                if isinstance(parent, SequenceNode):
                    # A loop, not a comprehension: a list here has one or two items,
                    # and a comprehension is a function call of its own.
                    for i, item in enumerate(parent.value):
                        step.append((item, f"{where}[{i}]"))
        else:
            for parent, where in found:
                child = get(parent, segment)
                if child is not None:
                    step.append((child, f"{where}.{segment}" if where else segment))
        if not step:
            return step
        found = step
    return found
