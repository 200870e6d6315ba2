"""The visit of a stream's documents, the first half of a render (render.find_and_decide):
each chunk passed through on what its bytes prove, or composed; its resources noted
(namespaces, our Secrets); its images found and parsed, each distinct one decided by rule
when first found; then the document settled (rewriter/settled.py) or its sites kept as
plan.Found for the probe and the rewrite. Documents go through these steps a batch at a
time (BATCH); big ones are read from libyaml's events instead (`_find_lean`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
from collections.abc import Iterator
from typing import Any

from rewriter import settled
from rewriter.decide import Rules, decide_by_rule
from rewriter.diagnostics import Reporter
from rewriter.errors import RewriterError
from rewriter.location import Notice
from rewriter.manifest import edit, eventfind, prefilter
from rewriter.manifest.document import (
    Document,
    Resource,
    annotations_of,
    get,
    get_path,
    line_break_of,
    parse,
    scalar,
    tag_of,
)
from rewriter.manifest.fields import (
    DATA_KINDS,
    NEVER_SCANNED,
    FieldTable,
    ImageSite,
    PodSpec,
    PullSecrets,
    find_images,
    follow,
    is_pod_spec,
    pull_secret_target,
)
from rewriter.manifest.stream import Chunk, check_depth, check_syntax
from rewriter.plan import Found, Plan, Repeated, Repeats, image_path, location
from rewriter.reference import ImageRef, InvalidReference
from rewriter.render_options import Options
from rewriter.secrets import MANAGED_BY, MANAGED_BY_LABEL

ALL_NAMESPACES = "*"
_CORE_TAG = "tag:yaml.org,2002:"
_STR_TAG = _CORE_TAG + "str"
_BINARY_TAG = _CORE_TAG + "binary"
# Kinds worth proving from the bytes (rewriter/manifest/prefilter.py): a cheap gate before
# libyaml. A `kind:` line at column 0, looked for after a line break (a literal prefix,
# which `re` finds at memchr speed; `^` in MULTILINE mode is tried at every byte: 0.85 to
# 0.23 us on a Pod) and at the very start.
_KIND_LINE = rb"kind:[ \t]*[\"']?(?:CustomResourceDefinition|ConfigMap|Secret)\b"
_KIND_HINT, _KIND_FIRST = re.compile(rb"\n" + _KIND_LINE), re.compile(_KIND_LINE)


def _kind_hinted(data: bytes) -> bool:
    return _KIND_HINT.search(data) is not None or _KIND_FIRST.match(data) is not None


def visit(
    bom: bytes,
    chunks: list[Chunk],
    options: Options,
    report: Reporter,
    parse_all: bool,
    lean: bool,
    settle: bool,
) -> Plan:
    """The stream's documents and image sites, nothing decided yet but by rule.

    `parse_all`: every document but CRDs composed, its tree kept (for reports); `lean`:
    big documents read from events; `settle`: documents a rule settles keep their edits
    rather than their sites (see render.find_and_decide)."""
    want_namespaces = parse_all or ALL_NAMESPACES in options.additional_namespaces
    triggers = options.fields.trigger_words() | {b"Secret"}
    plan = Plan(bom, [], [], set(), set(), {}, options.fields)
    with collector_paused():
        _parse_and_find(
            plan, chunks, options, want_namespaces, triggers, report, parse_all, lean, settle
        )
    return plan


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Composing allocates millions of node objects that all live until the rewrite; the
    cyclic collector would rescan them again and again (a quarter of the CPU, and cost
    growing faster than the stream) while freeing nothing. Its previous state returns."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_and_find(
    result: Plan,
    chunks: list[Chunk],
    options: Options,
    want_namespaces: bool,
    triggers: frozenset[bytes],
    report: Reporter,
    keep_trees: bool,
    lean: bool,
    settle: bool,
) -> None:
    keep_trees = keep_trees or options.annotate  # annotation_change works on nodes
    lean = lean and not keep_trees and not options.fields.related_images
    tables: dict[tuple[str, str], FieldTable] = {}  # the entries that apply, by kind
    # One copy of each equal value the sites keep (kinds, namespaces, field paths, the
    # identity readings, pull secret entries): a chart repeats them in every workload.
    pool: dict[object, Any] = {}
    settle = settle and not keep_trees
    for batch in _batches(chunks, LEAN_SIZE if lean else None):
        big = batch[0]  # alone in its batch when it is big
        if (
            lean
            and len(big.data) >= LEAN_SIZE
            and not _passes_through(big.data, options, want_namespaces, triggers)
            and _find_lean(result, big, options, report)
        ):
            continue
        read, failure = _read(batch, options, want_namespaces, triggers, keep_trees)
        visited: list[tuple[Chunk | Document, list[tuple[ImageSite, ImageRef]]]] = [
            (item, _image_sites(result, item, tables, options, report))
            if isinstance(item, Document)
            else (item, [])
            for item in read
        ]
        del read
        for item, sites in visited:
            if isinstance(item, Chunk):
                result.items.append(item)
            elif not (settle and _settled(result, item, sites, options, pool)):
                _keep(result, item, sites, keep_trees, options, pool)
        if failure is not None:
            raise failure


# Documents are visited a few dozen at a time, each step over all of them before the
# next (read, find, then settle or keep): each step's code and data then stay in the
# processor's caches, which taking one document through every step evicted. On a
# stream of small workloads the render took a sixth less time (docs/performance.md).
BATCH = 32


def _batches(chunks: list[Chunk], alone_from: int | None) -> Iterator[list[Chunk]]:
    """The chunks in order, BATCH at a time; with `alone_from`, a chunk of that many
    bytes or more in a batch of its own."""
    batch: list[Chunk] = []
    for chunk in chunks:
        if alone_from is not None and len(chunk.data) >= alone_from:
            if batch:
                yield batch
                batch = []
            yield [chunk]
            continue
        batch.append(chunk)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _read(
    batch: list[Chunk],
    options: Options,
    want_namespaces: bool,
    triggers: frozenset[bytes],
    keep_trees: bool,
) -> tuple[list[Chunk | Document], RewriterError | None]:
    """Each chunk passed through (checked for syntax) or composed, in order, up to the
    first that cannot be read: its error comes back, to be raised once the documents
    before it are visited, so that their warnings come first as when each document was
    visited alone."""
    read: list[Chunk | Document] = []
    for chunk in batch:
        try:
            if _passes_through(chunk.data, options, want_namespaces, triggers):
                check_syntax(chunk)
                read.append(chunk)
            else:
                read.append(parse(chunk, lazy_tags=not keep_trees))
        except RewriterError as exc:
            return read, exc
    return read, None


def _image_sites(
    result: Plan,
    doc: Document,
    tables: dict[tuple[str, str], FieldTable],
    options: Options,
    report: Reporter,
) -> list[tuple[ImageSite, ImageRef]]:
    """Every image site of a document with its reference, in the finder's order; each
    of its resources noted (namespaces, our Secrets) on the way."""
    plain = doc.plain()
    sites: list[tuple[ImageSite, ImageRef]] = []
    for resource in doc.resources():
        _note_resource(result, doc, resource, options)
        kind = (resource.kind, resource.api_version)
        table = tables.get(kind)
        if table is None:
            table = tables[kind] = options.fields.for_resource(*kind)
        for image in find_images(resource, table, plain):
            ref = _image_ref(doc, image, options.strict, report)
            if ref is not None:
                sites.append((image, _distinct(result, ref, options.rules)))
    return sites


def _distinct(plan: Plan, ref: ImageRef, rules: Rules) -> ImageRef:
    """The plan's one copy of an image; the first time it is found, a rule's decision
    on it is noted too (None: only a probe can tell)."""
    known = plan.refs.get(ref.text)
    if known is not None:
        return known
    plan.refs[ref.text] = ref
    plan.by_rule[ref.text] = decide_by_rule(ref, rules)
    return ref


def _settled(
    result: Plan,
    doc: Document,
    sites: list[tuple[ImageSite, ImageRef]],
    options: Options,
    pool: dict[object, Any],
) -> bool:
    """Whether the document was settled (rewriter/settled.py), its tree let go."""
    if doc.shared or (result.managed_secrets and doc.index in result.managed_secrets):
        return False
    edits = settled.settle(doc, sites, result.by_rule, options, result.consumers, pool)
    if edits is None:
        return False
    result.items.append(edits)
    doc.release()
    return True


def _keep(
    result: Plan,
    doc: Document,
    sites: list[tuple[ImageSite, ImageRef]],
    keep_trees: bool,
    options: Options,
    pool: dict[object, Any],
) -> None:
    """Keep a document and its sites for the rewrite (plan.Found); unless its tree is
    kept, also what the rewrite needs of their resources, and let the tree go."""
    result.items.append(doc)
    release = not (keep_trees or doc.shared)
    holders: dict[str, edit.Splice | None] = {}  # pull secret entries, by holder path
    resources: dict[int, Resource] = {}
    for image, ref in sites:
        found = _found(doc, image, ref, options if release else None, holders)
        found.path = pool.setdefault(found.path, found.path)
        found.holder = pool.setdefault(found.holder, found.holder)
        found.secret = pool.setdefault(found.secret, found.secret)
        result.found.append(found)
        resources[id(image.resource)] = image.resource
    for resource in resources.values():
        resource.api_version = pool.setdefault(resource.api_version, resource.api_version)
        resource.kind = pool.setdefault(resource.kind, resource.kind)
        resource.namespace = pool.setdefault(resource.namespace, resource.namespace)
        resource.identity = pool.setdefault(resource.identity, resource.identity)
        if release:  # read for the Secrets' ordering (secrets.Consumers)
            resource.annotations = annotations_of(resource) or None
            resource.node = None
    if release:
        doc.release()


# Documents from this many bytes on are read from events in a lean plan (see find_and_decide()).
LEAN_SIZE = 1 << 18


def _find_lean(result: Plan, chunk: Chunk, options: Options, report: Reporter) -> bool:
    """Find the images of a big document from libyaml's events (rewriter/manifest/eventfind.py),
    as find_images would on its tree; False when it must be composed instead."""
    data = chunk.data
    if not data.isascii():  # libyaml's marks count characters; here they are bytes too
        return False
    check_depth(chunk)
    read = eventfind.read(data, options.fields)
    if read is None:
        return False
    text = data.decode("ascii")
    doc = Document(chunk, text, read.root, line_break_of(text), events=read.events)
    (resource,) = doc.resources()
    table = options.fields.for_resource(resource.kind, resource.api_version)
    if (
        resource.kind.endswith("List")
        or resource.kind in DATA_KINDS
        or resource.kind in NEVER_SCANNED
        or table.images  # custom resource image fields: the tree's finder reads them
    ):
        return False
    _note_resource(result, doc, resource, options)
    result.items.append(doc)
    holders: dict[str, edit.Splice | None] = {}
    groups: dict[tuple[str, str | None, str], Repeated] = {}
    seen: set[str] = set()
    for spec_field in table.pod_specs:
        for spec_node, spec_path in follow(read.root, spec_field.path, ""):
            if not is_pod_spec(spec_node) or spec_path in seen:
                continue
            seen.add(spec_path)
            pod_spec = PodSpec(spec_node, spec_path)
            for which, images in eventfind.pod_spec_images(read, spec_path):
                for at in range(len(images.values)):
                    path = image_path(spec_path, which, images.indexes[at])
                    site = ImageSite(resource, images.node(at), path, pod_spec, PullSecrets.WARN)
                    ref = _image_ref(doc, site, options.strict, report)
                    if ref is None:
                        continue
                    ref = _distinct(result, ref, options.rules)
                    key = (ref.text, site.node.style, spec_path)
                    group = groups.get(key)
                    if group is None:
                        repeats = Repeats(spec_path, len(seen) - 1)
                        made = _found(doc, site, ref, options, holders, repeats)
                        assert isinstance(made, Repeated)
                        group = groups[key] = made
                        result.found.append(group)
                    more = group.repeats
                    more.starts.append(images.starts[at])
                    more.ends.append(images.ends[at])
                    more.lines.append(images.lines[at])
                    more.which.append(which)
                    more.indexes.append(images.indexes[at])
    if groups:
        resource.annotations = annotations_of(resource) or None
    resource.node = None
    doc.release()
    return True


def _found(
    doc: Document,
    image: ImageSite,
    ref: ImageRef,
    release: Options | None,
    holders: dict[str, edit.Splice | None],
    repeats: Repeats | None = None,
) -> Found:
    """An image site by its positions; with `release` (the document's tree is about to
    go), also the entry that would name our Secret in its pull secrets."""
    node = image.node
    target = pull_secret_target(image)
    site = (Found if repeats is None else functools.partial(Repeated, repeats=repeats))(
        resource=image.resource,
        path=image.path,
        line=node.start_mark.line,
        start=node.start_mark.index,
        end=node.end_mark.index,
        style=node.style,
        pull_secrets=image.pull_secrets,
        holder=target[2] if target else None,
        doc=doc,
        ref=ref,
    )
    if target is None:
        return site
    if release is not None and release.pull_secrets:
        if target[2] not in holders:
            holders[target[2]] = edit.add_pull_secret(
                doc, target[0], target[1], release.secret_name
            )
        site.secret = holders[target[2]]
    return site


def _passes_through(
    data: bytes, options: Options, want_namespaces: bool, triggers: frozenset[bytes]
) -> bool:
    """Whether the raw bytes prove the document holds nothing the render needs: no image,
    none of our Secrets and, when `*` namespaces are wanted, no namespace."""
    if not want_namespaces and not prefilter.could_spell(data, triggers):
        return True
    kind = prefilter.root_kind(data) if _kind_hinted(data) else None
    if kind in NEVER_SCANNED:
        return True
    if want_namespaces or kind not in DATA_KINDS or options.fields.names_kind(kind):
        return False
    # A ConfigMap, or a Secret that cannot be named like ours.
    return kind == "ConfigMap" or not prefilter.could_spell(data, [options.secret_name.encode()])


def _note_resource(result: Plan, doc: Document, resource: Resource, options: Options) -> None:
    if resource.namespace:
        result.namespaces.add(resource.namespace)
    if resource.kind == "Namespace" and resource.name:
        result.namespaces.add(resource.name)
    if (
        resource.kind == "Secret"
        and resource.name == options.secret_name
        # A KRM ResourceList's items are the function's resources, not a List in the
        # stream: rewriter/hosts/krm.py replaces our Secrets among them and refuses others.
        and not (resource.path and scalar(get(doc.root, "kind")) == "ResourceList")
    ):
        labels = get_path(resource.node, "metadata", "labels")
        if scalar(get(labels, MANAGED_BY_LABEL)) == MANAGED_BY and not resource.path:
            result.managed_secrets.add(doc.index)  # ours from an earlier pass: replaced
        else:
            # A List item cannot be dropped like a document of its own, so even our own
            # Secret inside a List is in the way (the cluster would get two).
            result.user_secrets[resource.namespace or options.namespace] = (doc, resource)


def _image_ref(doc: Document, site: ImageSite, strict: bool, report: Reporter) -> ImageRef | None:
    """Parse a site's value; an unusable value is a warning (an error under --strict)."""
    node = site.node
    problem: str | None = None
    ref: ImageRef | None = None
    # A custom tag (`!foo x`) is a string to kubectl; a core tag other than str is not.
    tag = tag_of(node)
    text = tag == _STR_TAG or not tag.startswith(_CORE_TAG)
    refuse = False
    if tag == _BINARY_TAG:
        problem, refuse = "tagged !!binary; write the image as a plain string", True
    elif not text:
        problem = f"not a string ({tag.rsplit(':', 1)[-1]}: {node.value!r})"
        # An explicit tag (`!!int quay.io/x`): whatever a reader makes of it, it must not
        # be an image passed by unproxied. Plain 42 or true are no image to anyone.
        raw = doc.text[node.start_mark.index : node.end_mark.index]
        refuse = "!" in raw[: edit.properties_length(raw)] and _parses(str(node.value))
    else:
        try:
            ref = ImageRef.parse(str(node.value))
        except InvalidReference as exc:
            problem = f"invalid image reference {node.value!r} ({exc})"
    if problem is None:
        return ref
    where = location(doc, site.resource, site.path, node.start_mark.line, of_value=True)
    if strict or refuse:
        raise RewriterError(problem, where)
    report.warn(Notice(f"{problem}; left unchanged", where))
    return None


def _parses(text: str) -> bool:
    try:
        ImageRef.parse(text)
    except InvalidReference:
        return False
    return True
