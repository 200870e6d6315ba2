"""The transform, in the kbld order: find every image, decide the distinct ones (probing
those no rule settles, all at once), then rewrite, then add the Secrets.

`find_and_decide()` does the finding and deciding and is shared by `render` and `scan`;
`rewrite()` turns a plan into the output bytes. Failures of any image are reported
together, and nothing is written unless the whole stream succeeds. The documents are
visited by rewriter/visit.py; `rewriter render`'s documents that a rule settles get their
edits while they are visited (rewriter/settled.py) and are written here a batch at a time.
"""

from __future__ import annotations

import heapq
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from yaml.nodes import MappingNode, ScalarNode

from rewriter import editcheck, settled
from rewriter.decide import Action, Decision, Rules, collisions, decide
from rewriter.diagnostics import Reporter
from rewriter.errors import CannotRewrite, RewriterError
from rewriter.location import Notice
from rewriter.manifest import edit, splicecheck
from rewriter.manifest.document import Document, Resource, Route, annotations_of, field_at, route
from rewriter.manifest.fields import PullSecrets
from rewriter.manifest.stream import Chunk, split
from rewriter.options import ORIGINAL_IMAGES
from rewriter.plan import Found, Plan, Repeated, Settled, failures, list_item, located, location
from rewriter.probe.verdict import ProbeKey, ProbeResult
from rewriter.reference import ImageRef
from rewriter.render_options import Options
from rewriter.secrets import Consumers, dockerconfigjson, secret_document
from rewriter.visit import ALL_NAMESPACES, BATCH, collector_paused, visit

# Answers the probe for images no rule decides; {} when offline without a cache.
Prober = Callable[[Sequence[ImageRef]], Mapping[ProbeKey, ProbeResult]]


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
    plan = visit(bom, chunks, options, report, parse_all, lean, settle=lean)
    answers = _ask(plan, prober)
    failed = _decide(plan, options.rules, answers)
    if failed and any(isinstance(item, Settled) for item in plan.items):
        # Documents may have been settled with a decision that failed once every image
        # was known (two images sent to one name): visit the stream again keeping every
        # site, so that the failure names each. Its warnings were told already.
        plan = visit(bom, chunks, options, Reporter(io.StringIO()), parse_all, lean, settle=False)
        _decide(plan, options.rules, answers)
    return plan


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
    with collector_paused():  # each edited document is parsed again, to be checked
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


def _ask(plan: Plan, prober: Prober) -> Mapping[ProbeKey, ProbeResult]:
    """The probe's answers for the distinct images no rule decides, asked all at once."""
    to_probe = [ref for text, ref in plan.refs.items() if plan.by_rule[text] is None]
    return prober(to_probe) if to_probe else {}


def _decide(
    plan: Plan, rules: Rules, answers: Mapping[ProbeKey, ProbeResult]
) -> dict[ImageRef, Decision]:
    """Decide each distinct image once, and each kept site by it; returns the decisions
    that failed only because of another image (decide.collisions)."""
    decided = {
        ref: plan.by_rule[text] or decide(ref, rules, answers.get(ref.probe_key))
        for text, ref in plan.refs.items()
    }
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
