"""The transform, in the kbld order: find every image, decide the distinct ones (probing
those no rule settles, all at once), then rewrite, then add the Secrets.

`find_and_decide()` does the finding and deciding and is shared by `render` and `scan`;
`rewrite()` turns a plan into the output bytes. Failures of any image are reported
together, and nothing is written unless the whole stream succeeds. Documents go through
each step a batch at a time (BATCH); `rewriter render`'s documents that a rule settles
get their edits while they are visited (rewriter/settled.py).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import heapq
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from yaml.nodes import MappingNode, ScalarNode

from rewriter import editcheck, settled
from rewriter.decide import Action, Decision, Rules, collisions, decide, decide_by_rule
from rewriter.diagnostics import Reporter
from rewriter.errors import CannotRewrite, RewriterError
from rewriter.location import Notice
from rewriter.manifest import edit, eventfind, prefilter, splicecheck
from rewriter.manifest.document import (
    Document,
    Resource,
    Route,
    annotations_of,
    field_at,
    get,
    get_path,
    line_break_of,
    parse,
    route,
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
from rewriter.manifest.stream import Chunk, check_depth, check_syntax, split
from rewriter.options import ORIGINAL_IMAGES
from rewriter.plan import (
    Found,
    Plan,
    Repeated,
    Repeats,
    Settled,
    failures,
    image_path,
    list_item,
    located,
    location,
)
from rewriter.probe.verdict import ProbeKey, ProbeResult
from rewriter.reference import ImageRef, InvalidReference
from rewriter.render_options import Options
from rewriter.secrets import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Consumers,
    dockerconfigjson,
    secret_document,
)

# Answers the probe for images no rule decides; {} when offline without a cache.
Prober = Callable[[Sequence[ImageRef]], Mapping[ProbeKey, ProbeResult]]

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


def find_and_decide(
    data: bytes,
    options: Options,
    prober: Prober,
    report: Reporter,
    parse_all: bool = False,
    files: Sequence[tuple[str, int]] = (),
    lean: bool = False,
) -> Plan:
    """Parse what may hold an image, find every image, and decide each distinct one.

    `parse_all` parses every document but CRDs, for reports that look beyond the fields.
    `files` names the input files of a stream read from several (see stream.split).
    `lean`, for callers that only rewrite (reports want a Found per site): documents
    whose every image a rule decides get their edits as they are visited, not a Found
    per site (rewriter/settled.py), and big documents are read from events, never
    composed whole, their sites with the same image and pull secret list one Repeated.
    """
    bom, chunks = split(data, files)
    del data  # the chunks hold the bytes now; one copy of a large stream is enough
    plan = _find(bom, chunks, options, report, parse_all, lean, settle=lean)
    answers = _ask(plan, prober)
    failed = _decide(plan, options.rules, answers)
    if failed and any(isinstance(item, Settled) for item in plan.items):
        # Documents may have been settled with a decision that failed once every image
        # was known (two images sent to one name): visit the stream again keeping every
        # site, so that the failure names each. Its warnings were told already.
        plan = _find(bom, chunks, options, Reporter(io.StringIO()), parse_all, lean, settle=False)
        _decide(plan, options.rules, answers)
    return plan


def _find(
    bom: bytes,
    chunks: list[Chunk],
    options: Options,
    report: Reporter,
    parse_all: bool,
    lean: bool,
    settle: bool,
) -> Plan:
    """The stream's documents and image sites, nothing decided yet but by rule."""
    want_namespaces = parse_all or ALL_NAMESPACES in options.additional_namespaces
    triggers = options.fields.trigger_words() | {b"Secret"}
    plan = Plan(bom, [], [], set(), set(), {}, options.fields)
    with _collector_paused():
        _parse_and_find(
            plan, chunks, options, want_namespaces, triggers, report, parse_all, lean, settle
        )
    return plan


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
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


@dataclass(frozen=True, slots=True)
class Rendered:
    """The result of a render: the input's documents edited, and the Secrets to add.

    The documents stay as pieces (mostly the input's own chunks) so that writing the
    output never holds another copy of a stream that may be tens of MB.
    """

    pieces: list[bytes]  # byte-order mark and documents, without our Secrets of a past pass
    secrets: list[str]  # our Secrets as YAML documents (no `---`), sorted by namespace

    @property
    def documents(self) -> bytes:
        return b"".join(self.pieces)

    def parts(self) -> Iterator[bytes]:
        """The output stream in pieces: the documents, then one `---` document per Secret."""
        yield from self.pieces
        last = next((piece for piece in reversed(self.pieces) if piece), b"")
        if self.secrets and last and not last.endswith(b"\n"):
            yield b"\n"
        for secret in self.secrets:
            yield b"---\n" + secret.encode()

    def stream(self) -> bytes:
        return b"".join(self.parts())

    def write(self, out: BinaryIO) -> None:
        for part in self.parts():
            out.write(part)


def rewrite(plan: Plan, options: Options, report: Reporter) -> Rendered:
    """Edit the documents and build the Secrets; raises on any failure."""
    failing = [f for f in plan.found if f.decision and f.decision.action is Action.FAIL]
    if failing:
        raise CannotRewrite(failures(failing))
    consumers = _consumers(plan, options, report)
    namespaces = _secret_namespaces(plan, options, consumers)
    for namespace in namespaces:
        if namespace in plan.user_secrets:
            doc, resource = plan.user_secrets[namespace]
            whose = "inside a List" if resource.path else "and is not managed by rewriter"
            raise RewriterError(
                f"a Secret named {options.secret_name!r} already exists in "
                f"namespace {namespace or '(default)'} {whose}; "
                "rename it or choose another name with --secret-name",
                location(doc, item=list_item(resource)),
            )
    if namespaces and not options.credentials:
        raise RewriterError(options.missing_credentials)

    # Each document's edits are made just before it is written, from its own images (the
    # plan lists them in document order): nothing per image outlives its document.
    out: list[bytes] = [plan.bom]
    found = plan.found
    at = 0
    counts = splicecheck.Counts()  # the edited documents' parser events, a batch at a time
    ready: list[Settled] = []  # settled documents, written BATCH at a time
    with _collector_paused():  # each edited document is parsed again, to be checked
        for item in plan.items:
            if isinstance(item, Settled):
                ready.append(item)
                if len(ready) == BATCH:
                    out.extend(settled.write(ready, counts))
                    ready.clear()
                continue
            out.extend(settled.write(ready, counts))
            ready.clear()
            if isinstance(item, Chunk):
                out.append(item.data)
                continue
            mine = at
            while at < len(found) and found[at].doc is item:
                at += 1
            if plan.managed_secrets and item.index in plan.managed_secrets:
                continue
            own = found[mine:at]
            if item.released and own and isinstance(own[0], Repeated):  # read from events
                out.extend(_rewrite_lean(item, own, options))
                item.forget_input()
                continue
            if item.released:
                text = item.chunk.data.decode("utf-8")
                replaced, inserted = _released_splices(text, own, options)
                if replaced or inserted:
                    out.append(
                        editcheck.checked(item, text, replaced, inserted, _expected(own), counts)
                    )
                    item.forget_input()
                else:
                    out.append(item.chunk.data)
                continue
            changes = _changes(item, own, options)
            made = edit.splices(item, changes) if changes else []
            if made:
                out.append(editcheck.edited(item, made, _expected(own)))
            else:
                out.append(item.chunk.data)
        out.extend(settled.write(ready, counts))
        counts.flush()
    if at != len(found):
        raise RewriterError("internal error: images out of document order")
    return Rendered(out, _secrets(namespaces, consumers, options))


def _consumers(plan: Plan, options: Options, report: Reporter) -> dict[str | None, Consumers]:
    """The workloads that need our Secret, by namespace; warns about images whose kind
    takes no pull secrets."""
    consumers = plan.consumers  # those of settled documents so far
    if not options.pull_secrets:
        return consumers
    holders_done: set[str] = set()  # by field path, in the current document
    current: Document | None = None
    for found in plan.found:
        decision = found.decision
        assert decision is not None
        if not decision.needs_secret:
            continue
        site = found.site
        if found.doc is not current:
            current = found.doc
            holders_done.clear()
        namespace = site.resource.namespace or options.namespace
        consumers.setdefault(namespace, Consumers())
        # One entry per list of pull secrets, however many images share it.
        holder_id = site.holder if site.holder is not None else site.path
        if holder_id in holders_done:
            continue
        holders_done.add(holder_id)
        consumers[namespace].note(annotations_of(site.resource))
        if site.holder is None and site.pull_secrets is PullSecrets.WARN:
            report.warn(
                Notice(
                    f"{site.resource.kind} has no pull secret field; the cluster needs "
                    f"credentials for {decision.new_text or found.ref.text} by other means "
                    "(e.g. the service account)",
                    located(found),
                )
            )
    return consumers


def _released_splices(
    text: str, found: list[Found], options: Options
) -> tuple[list[splicecheck.Replacement], list[edit.Splice]]:
    """The splices of a document whose tree is gone, from the positions its sites kept:
    the replaced images (with what splicecheck needs to check them) and the inserted
    pull secret entries, each once (several images share one pull secret list)."""
    replaced: list[splicecheck.Replacement] = []
    inserted: dict[edit.Splice, None] = {}
    for f in found:
        decision, site = f.decision, f.site
        assert decision is not None
        if decision.new_text is not None:
            new, old = decision.new_text, f.ref.text
            made = edit.replace_span(text, site.start, site.end, site.style, old, new)
            replaced.append((site.start, site.end, old, new, made))
        if decision.needs_secret and options.pull_secrets and site.secret is not None:
            inserted[site.secret] = None
    return replaced, list(inserted)


def _rewrite_lean(doc: Document, found: list[Found], options: Options) -> list[bytes]:
    """A big document read from events, edited: its bytes with every replaced scalar
    and inserted pull secret entry, built and checked (splicecheck.check_stream) as a
    stream of edits in text order, with no object per site (see Repeated)."""
    data = doc.chunk.data
    inserted: dict[edit.Splice, None] = {}
    for f in found:
        assert f.decision is not None
        if f.decision.needs_secret and options.pull_secrets and f.secret is not None:
            inserted[f.secret] = None

    def edits() -> Iterator[splicecheck.Edit]:
        replaced = [
            _spans(f) for f in found if f.decision is not None and f.decision.new_text is not None
        ]
        secrets = ((s.start, s.end, s) for s in sorted(inserted))
        for start, end, what in heapq.merge(*replaced, secrets, key=lambda e: (e[0], e[1])):
            if isinstance(what, edit.Splice):
                yield start, end, what.text, None
            else:
                assert isinstance(what, Found)
                assert what.decision is not None and what.decision.new_text is not None
                raw = data[start:end].decode("ascii")
                new = splicecheck.rewritten(raw, what.style, what.ref.text, what.decision.new_text)
                yield start, end, new, (raw, what.ref.text, what.decision.new_text)

    # The output in pieces of ~1 MiB: one bytes object of the whole would be a second
    # copy of it next to the buffer it is built in (~17 MiB for the wide Pod).
    pieces: list[bytes] = []
    out = bytearray()
    at = 0
    for start, end, text, _ in edits():
        out += data[at:start]
        out += text.encode("utf-8")
        at = end
        if len(out) >= _PIECE:
            pieces.append(bytes(out))
            out.clear()
    out += data[at:]
    pieces.append(bytes(out))
    del out
    splicecheck.check_stream(doc, data, pieces, edits(), sum(s.events for s in inserted))
    return pieces


_PIECE = 1 << 20


def _spans(f: Found) -> Iterator[tuple[int, int, Found]]:
    for start, end, _, _ in _sites(f):
        yield start, end, f


def _sites(f: Found) -> Iterator[tuple[int, int, int, str]]:
    if isinstance(f, Repeated):
        yield from f.sites()
    else:
        yield f.start, f.end, f.line, f.path


def _changes(
    doc: Document, found: list[Found], options: Options
) -> list[tuple[Route, edit.Change]]:
    """The changes to a document whose tree is kept, each with its route (for documents
    with anchors, where one node may be read at several places: edit.splices decides how
    to write them)."""
    changes: list[tuple[Route, edit.Change]] = []
    holders_done: set[str] = set()
    originals: dict[str, tuple[Resource, dict[str, str]]] = {}  # by resource path
    for f in found:
        decision, site = f.decision, f.site
        assert decision is not None
        if decision.new_text is not None:
            node = field_at(doc.root, site.path)
            assert isinstance(node, ScalarNode)
            change = edit.scalar_change(node, decision.new_text)
            changes.append((_route(doc, site.path), change))
            resource = site.resource
            if options.annotate:
                images = originals.setdefault(resource.path, (resource, {}))[1]
                # Paths from the resource itself: the annotation sits on it, and must not
                # change when it moves within a List (or a KRM ResourceList).
                images[site.path.removeprefix(f"{resource.path}.")] = f.ref.text
        if not (decision.needs_secret and options.pull_secrets) or site.holder is None:
            continue
        if site.holder in holders_done:
            continue
        holders_done.add(site.holder)
        holder = field_at(doc.root, site.holder)
        assert isinstance(holder, MappingNode)
        added = edit.pull_secret_change(holder, site.holder_key, options.secret_name)
        if added is not None:
            changes.append(((*_route(doc, site.holder), *added[0]), added[1]))
    for resource, images in originals.values():
        value = json.dumps(images, sort_keys=True, separators=(",", ":"))
        assert resource.node is not None  # --annotate keeps the trees
        annotated = edit.annotation_change(resource.node, ORIGINAL_IMAGES, value)
        if annotated is not None:
            changes.append(((*_route(doc, resource.path), *annotated[0]), annotated[1]))
    return changes


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


def _ask(plan: Plan, prober: Prober) -> Mapping[ProbeKey, ProbeResult]:
    """The probe's answers for the distinct images no rule decides, asked all at once."""
    to_probe = [ref for text, ref in plan.refs.items() if plan.by_rule[text] is None]
    return prober(to_probe) if to_probe else {}


def _decide(
    plan: Plan, rules: Rules, answers: Mapping[ProbeKey, ProbeResult]
) -> dict[ImageRef, Decision]:
    """Decide each distinct image once, and each kept site by it; returns the decisions
    that failed only because of another image (decide.collisions)."""
    decided = {ref: decide(ref, rules, answers.get(ref.probe_key)) for ref in plan.refs.values()}
    failed = collisions(decided)
    decided.update(failed)
    # By text: a reference's text is hashed once, an ImageRef's fields at every lookup.
    plan.decided = {text: decided[ref] for text, ref in plan.refs.items()}
    for f in plan.found:
        f.decision, f.probe = plan.decided[f.ref.text], answers.get(f.ref.probe_key)
    return failed


def _route(doc: Document, path: str) -> Route:
    """The steps to a field, needed only where anchors let one node be read twice."""
    if not doc.shared:
        return ()
    found = route(doc.root, path)
    if found is None:
        raise RewriterError(f"{doc.where()}: internal error: no field {path}")
    return found


def _secret_namespaces(
    plan: Plan, options: Options, consumers: Mapping[str | None, Consumers]
) -> list[str | None]:
    wanted: set[str | None] = set(consumers)
    for namespace in options.additional_namespaces:
        if namespace == ALL_NAMESPACES:
            wanted.update(plan.namespaces)
        else:
            wanted.add(namespace)
    # Secrets follow the documents sorted by namespace; the namespace-less one first.
    return sorted(wanted, key=lambda ns: (ns is not None, ns or ""))


def _expected(found: list[Found]) -> editcheck.Expected:
    """What each site must read as after the edit, as editcheck takes it."""
    return [(f.path, f.decision.new_text or f.ref.text, f.resource) for f in found if f.decision]


def _secrets(
    namespaces: list[str | None], consumers: Mapping[str | None, Consumers], options: Options
) -> list[str]:
    if not namespaces:
        return []
    config = dockerconfigjson(options.credentials)
    return [
        secret_document(options.secret_name, namespace, config, consumers.get(namespace))
        for namespace in namespaces
    ]
