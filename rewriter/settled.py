"""Documents settled while they are visited: every image in them decided by a rule.

On a chart of small workloads, `--private`/`--public` and the registry rules decide
nearly every image without a probe. Keeping each image site as a plan.Found, with its
Resource and Document, until every image was decided held ~150 bytes a workload and
took a pass of its own to turn them into edits. So `render` (find_and_decide with
`lean`) decides such a document's images while its tree is at hand, makes its edits
(the splices), notes its workloads that need our Secret (by namespace, with the
annotations that order the Secret), and keeps only that: a plan.Settled. The rewrite
applies and checks the splices (`write`) in a pass of its own: done while visiting,
that work made the render a tenth slower (visiting and checking then evict each other
from the processor's caches).

A document is not settled, and its sites are kept for the rewrite as before, when one
of its images needs a probe or fails by rule, needs a pull secret where its kind takes
none (the rewrite warns about those once, in document order), or cannot be checked from
its splices alone (an image scalar over several lines, a complex key: see
rewriter/manifest/splicecheck.py). A decision that passed can still become a failure
once every image is known: two images sent to one name (decide.collisions). Nothing is
written then: find_and_decide visits the stream again, keeping every site, so that the
failure names each of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rewriter.decide import Action, Decision
from rewriter.errors import RewriterError
from rewriter.manifest import edit, splicecheck
from rewriter.manifest.document import Document, Resource, annotations_of
from rewriter.manifest.fields import ImageSite, PullSecrets, pull_secret_target
from rewriter.plan import Settled
from rewriter.reference import ImageRef
from rewriter.render_options import Options
from rewriter.secrets import Consumers


def settle(
    doc: Document,
    sites: Sequence[tuple[ImageSite, ImageRef]],
    by_rule: Mapping[str, Decision | None],
    options: Options,
    consumers: dict[str | None, Consumers],
    pool: dict[object, Any],
) -> Settled | None:
    """`doc`'s edits, or None when it cannot be settled (see above).

    `sites`: its image sites with their references, in the finder's order; `by_rule`:
    what a rule says of each image, by its text (None: only a probe can tell). When it
    is settled, each of its lists of pull secrets that must name our Secret is noted in
    `consumers`, once.
    `pool` keeps one copy of equal entries (workloads laid out alike get the same).
    """
    if doc.events is None:
        return None
    replaced: list[tuple[int, int, str | None, str, str]] = []
    # The workloads that need our Secret, by the field path of their pull secret list
    # (an image's own path where there is none), and the entries naming it there
    consumer: dict[str, Resource] = {}
    inserted: list[edit.Splice] = []
    for site, ref in sites:
        decision = by_rule[ref.text]
        if decision is None or decision.action is Action.FAIL:
            return None
        new = decision.new_text
        if new is not None:
            node = site.node
            if node.start_mark.line != node.end_mark.line:
                return None
            replaced.append((node.start_mark.index, node.end_mark.index, node.style, ref.text, new))
        if not (decision.needs_secret and options.pull_secrets):
            continue
        target = pull_secret_target(site)
        if target is None and site.pull_secrets is PullSecrets.WARN:
            return None
        holder = site.path if target is None else target[2]
        if holder in consumer:
            continue
        consumer[holder] = site.resource
        if target is not None:
            entry = edit.add_pull_secret(doc, target[0], target[1], options.secret_name)
            if entry is not None:
                inserted.append(pool.setdefault(entry, entry))
    for resource in consumer.values():
        namespace = resource.namespace or options.namespace
        if namespace not in consumers:
            consumers[namespace] = Consumers()
        consumers[namespace].note(annotations_of(resource))
    return Settled(doc.chunk, doc.events, tuple(replaced), tuple(inserted))


def write(batch: Sequence[Settled], counts: splicecheck.Counts) -> list[bytes]:
    """Settled documents' output: their splices made, then applied and checked (the
    check's parser events counted with `counts`), each step over the batch before the
    next (see visit.BATCH). Their input is let go: a plan is written once."""
    made: list[tuple[str, list[splicecheck.Replacement]] | None] = []
    for settled in batch:
        if not settled.replaced and not settled.inserted:
            made.append(None)
            continue
        original = settled.chunk.data.decode("utf-8")
        replaced = [
            (
                start,
                end,
                before,
                after,
                edit.replace_span(original, start, end, style, before, after),
            )
            for start, end, style, before, after in settled.replaced
        ]
        made.append((original, replaced))
    out: list[bytes] = []
    for settled, splices in zip(batch, made, strict=True):
        chunk = settled.chunk
        if splices is None:
            out.append(chunk.data)
            continue
        original, replaced = splices
        # A Document for the check's messages and its count of events (none is kept).
        doc = Document(chunk, "", None, "", released=True, events=settled.events)
        text = splicecheck.edited(doc, original, replaced, settled.inserted, counts)
        if text is None:
            raise RewriterError(f"{doc.where()}: internal error: settled, but not checkable")
        chunk.data = b""
        out.append(text.encode("utf-8"))
    return out
