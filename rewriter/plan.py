"""What a render knows before it writes: every image site found, with its parsed
reference and its decision, and the documents they are in (`Plan`, made by
render.find_and_decide and read by render.rewrite, `scan`, `images` and the KRM
function), and where each site is, as warnings and errors tell it (`located`). In the
lean plan of `rewriter render`, a document whose every image a rule decides keeps its
edits instead of its sites (`Settled`, rewriter/settled.py).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

from rewriter.decide import Decision
from rewriter.location import Location
from rewriter.manifest import edit
from rewriter.manifest.document import Document, Resource
from rewriter.manifest.fields import (
    POD_SPEC_IMAGES,
    POD_SPEC_PULL_SECRETS,
    FieldTable,
    PullSecrets,
    format_path,
)
from rewriter.manifest.fields import Path as FieldPath
from rewriter.manifest.stream import Chunk
from rewriter.probe.verdict import ProbeResult
from rewriter.reference import ImageRef
from rewriter.secrets import Consumers


@dataclass(slots=True)
class Site:
    """An image site as the rewrite needs it: positions, not nodes.

    A composed tree costs ~50 times its text; holding every document's until the end
    made a chart of small workloads take ~75 times its size in memory. So the finder's
    sites are turned into these while the document is visited, and the tree goes
    (Document.release) unless the document has anchors (edit.splices then needs the
    nodes) or the caller wants the trees (--annotate, `scan --unclaimed`).
    """

    resource: Resource
    path: str  # e.g. 'spec.template.spec.containers[0].image'
    line: int  # the scalar's line in the document, 0-based
    start: int  # the scalar's span in the document's text
    end: int
    style: str | None
    pull_secrets: FieldPath | PullSecrets  # for CR fields: where that kind takes them
    # The field path of the mapping whose list names our Secret; None when there is none
    holder: str | None
    # The entry that names our Secret there, made while the tree was at hand (released
    # documents only); None when the list names it already
    secret: edit.Splice | None = None

    @property
    def holder_key(self) -> str:
        """The key of the holder's pull secret list (as fields.pull_secret_target found it):
        a custom resource's own, else a pod spec's."""
        if isinstance(self.pull_secrets, tuple):
            return self.pull_secrets[-1]
        return POD_SPEC_PULL_SECRETS[-1]


@dataclass(slots=True, kw_only=True)
class Found(Site):
    """One image site, its parsed reference and the decision for it.

    The site's fields are the Found's own (one object per image, not two: a chart of
    small workloads has one image per few hundred bytes); `site` reads them as before.
    """

    doc: Document
    ref: ImageRef
    decision: Decision | None = None
    probe: ProbeResult | None = None

    @property
    def site(self) -> Site:
        return self


@dataclass(slots=True)
class Repeats:
    """More sites of a Repeated: one image scalar each, as compact arrays (a Found per
    scalar was ~300 bytes; a Pod of 200,000 containers needed 60 MiB of them)."""

    spec_path: str  # the pod spec they are under
    spec_order: int  # and its place among the document's pod specs, from 0
    which: array[int] = field(default_factory=lambda: array("q"))  # in POD_SPEC_IMAGES
    indexes: array[int] = field(default_factory=lambda: array("q"))  # in the list
    starts: array[int] = field(default_factory=lambda: array("q"))
    ends: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))

    def path(self, at: int) -> str:
        return image_path(self.spec_path, self.which[at], self.indexes[at])

    def place(self, at: int) -> tuple[int, int, int]:
        """Where the finder meets the site: sites sort by this as find_images orders them."""
        return self.spec_order, self.which[at], self.indexes[at]


@dataclass(slots=True, kw_only=True)
class Repeated(Found):
    """An image site of a big document read from events (rewriter/manifest/eventfind.py) that
    also stands for the other sites with the same image, style and pull secret list:
    they share its decision and its Secret; only their positions differ."""

    repeats: Repeats  # every site it stands for, its own first

    def sites(self) -> Iterator[tuple[int, int, int, str]]:
        """Every site it stands for: start, end, line and field path."""
        more = self.repeats
        for at in range(len(more.starts)):
            yield more.starts[at], more.ends[at], more.lines[at], more.path(at)


def image_path(spec_path: str, which: int, index: int) -> str:
    """`spec.containers[3].image`: a field path of POD_SPEC_IMAGES under a pod spec."""
    return f"{spec_path}.{_IMAGE_TEMPLATES[which].format(index)}"


_IMAGE_TEMPLATES = tuple(format_path(path).replace("[*]", "[{}]") for path in POD_SPEC_IMAGES)


@dataclass(slots=True)
class Settled:
    """A document whose every image a rule decided while it was visited, and the edits
    that makes (rewriter/settled.py): written without a Found per site, nor a Document
    (a stream of small workloads holds a hundred thousand of these)."""

    chunk: Chunk
    events: int  # libyaml's events for its text (Document.events), for the check
    # Each replaced image scalar: its span and style, the image it reads as and the
    # image it must read as
    replaced: tuple[tuple[int, int, str | None, str, str], ...]
    inserted: tuple[edit.Splice, ...]  # the entries naming our Secret in pull secret lists


@dataclass(slots=True)
class Plan:
    """The stream as found and decided: its documents in order (raw chunks where nothing
    needed parsing, the output of settled ones) and every other image site with its
    decision, in document order."""

    bom: bytes
    items: list[Chunk | Document | Settled]  # documents in order: raw when never parsed
    found: list[Found]
    namespaces: set[str]  # every namespace the stream mentions, for `*`
    managed_secrets: set[int]  # indexes of our own Secrets from an earlier pass (dropped)
    # A Secret named like ours that is not ours to replace, by namespace
    user_secrets: dict[str | None, tuple[Document, Resource]]
    fields: FieldTable
    # Every distinct image, in the order first found; what a rule says of each (None:
    # only a probe can tell); and what was decided (find_and_decide)
    refs: dict[str, ImageRef] = field(default_factory=dict)
    by_rule: dict[str, Decision | None] = field(default_factory=dict)
    decided: dict[str, Decision] = field(default_factory=dict)
    # The workloads of settled documents that need our Secret, by namespace (those of
    # the sites in `found` are added when the plan is rewritten, which it is once)
    consumers: dict[str | None, Consumers] = field(default_factory=dict)


def describe(found: Found) -> str:
    """`document 3 (Deployment ns/web, line 40) spec...image` for messages."""
    return located(found).text()


def located(found: Found) -> Location:
    """Where an image is: its document, resource, field and line."""
    return location(found.doc, found.site.resource, found.site.path, found.site.line)


def location(
    doc: Document,
    resource: Resource | None = None,
    path: str | None = None,
    line: int | None = None,
    *,
    item: int | None = None,
    of_value: bool = False,
) -> Location:
    """A place in `doc` as warnings and errors carry it: `path` from the document's root
    and `line` (0-based) in the document, as the finder has them."""
    chunk = doc.chunk
    field = path
    if resource is not None:
        item = list_item(resource)
        if item is not None and path is not None:
            field = path.removeprefix(f"{resource.path}.")
    return Location(
        document=chunk.number,
        file=chunk.origin.name if chunk.origin is not None else None,
        kind=resource.kind if resource is not None else None,
        namespace=resource.namespace if resource is not None else None,
        name=resource.name if resource is not None else None,
        item=item,
        field=field,
        line=chunk.line(line) if line is not None else None,
        of_value=of_value,
    )


def list_item(resource: Resource) -> int | None:
    """The index of a List's item (`items[3]`), None for a document's root."""
    return int(resource.path[len("items[") : -1]) if resource.path else None


def failures(failures: list[Found]) -> list[tuple[str, str, Location]]:
    """Each failing site with its image and reason, in the finder's order: a Repeated's
    sites (one Found for many) are put back in place."""
    sites: list[tuple[int, tuple[int, ...], tuple[str, str, Location]]] = []
    for f in failures:
        assert f.decision is not None
        if isinstance(f, Repeated):
            more = f.repeats
            for at in range(len(more.starts)):
                where = location(f.doc, f.resource, more.path(at), more.lines[at])
                sites.append((f.doc.index, more.place(at), (f.ref.text, f.decision.reason, where)))
        else:
            sites.append((f.doc.index, (len(sites),), (f.ref.text, f.decision.reason, located(f))))
    sites.sort(key=lambda site: site[:2])
    return [failure for *_, failure in sites]
