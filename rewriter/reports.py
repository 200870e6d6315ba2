"""`rewriter scan`: what the render would do to each image, as a table or as JSON.

The JSON form is a stable schema (documented in the README): a list of objects with the
keys below; new keys may be added, existing ones keep their meaning.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from rewriter.decide import Action, Decision, Rules, collisions, decide, decide_by_rule
from rewriter.errors import RewriterError
from rewriter.manifest.document import Document
from rewriter.manifest.unclaimed import Unclaimed, find_unclaimed
from rewriter.plan import Found, Plan
from rewriter.reference import ImageRef, InvalidReference
from rewriter.render import Prober

SCHEMA_VERSION = 1


def rows(plan: Plan) -> list[dict[str, Any]]:
    result = []
    for found in plan.found:
        decision, probe, resource = found.decision, found.probe, found.site.resource
        assert decision is not None
        result.append(
            {
                "document": found.doc.index,
                "line": found.doc.chunk.first_line + found.site.line,
                "kind": resource.kind,
                "namespace": resource.namespace,
                "name": resource.name,
                "field": found.site.path,
                "image": found.ref.text,
                "normalized": f"{found.ref.name}:{found.ref.reference}"
                if not found.ref.digest
                else f"{found.ref.name}@{found.ref.digest}",
                "action": decision.action.value,
                "reason": decision.reason,
                "probe": probe.verdict.value if probe else None,
                "cached": probe.cached if probe else None,
                "new_image": decision.new_text,
                "pull_secret": decision.needs_secret,
                **_file_keys(found.doc, found.site.line),
            }
        )
    return result


def _file_keys(doc: Document, line: int) -> dict[str, Any]:
    """With several input files: the file, and the document and line within it (keys
    added to the schema; `document` and `line` keep counting the whole stream)."""
    origin = doc.chunk.origin
    if origin is None:
        return {}
    chunk = doc.chunk
    return {"file": origin.name, "file_document": chunk.number, "file_line": chunk.line(line)}


def as_json(plan: Plan, with_unclaimed: bool = False) -> str:
    report: dict[str, Any] = {"version": SCHEMA_VERSION, "images": rows(plan)}
    if with_unclaimed:
        report["unclaimed"] = unclaimed_rows(plan)
    return json.dumps(report, indent=2) + "\n"


def as_table(plan: Plan) -> str:
    header = ("DOC", "RESOURCE", "FIELD", "IMAGE", "ACTION", "REASON", "NEW IMAGE")
    lines = [header]
    for row, found in zip(rows(plan), plan.found, strict=True):
        lines.append(
            (
                found.doc.chunk.short(),
                _resource(found),
                row["field"],
                row["image"],
                row["action"],
                row["reason"],
                row["new_image"] or "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    padded = (
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    )
    return "".join(line.rstrip() + "\n" for line in padded)


def unclaimed_table(plan: Plan) -> str:
    """Strings that look like images in no known field, for `scan --unclaimed`."""
    lines = ["", "Unclaimed (look like images, in no known field; add them with --config):"]
    for item in unclaimed(plan):
        where = f"{item.doc.chunk.name()} {item.resource.label().replace(' ', '/', 1)}"
        lines.append(f"  {where} {item.path}: {item.image}")
    if len(lines) == 2:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"


def unclaimed_rows(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "document": item.doc.index,
            "kind": item.resource.kind,
            "namespace": item.resource.namespace,
            "name": item.resource.name,
            "field": item.path,
            "image": item.image,
        }
        for item in unclaimed(plan)
    ]


def unclaimed(plan: Plan) -> Iterator[Unclaimed]:
    claimed = {(found.doc.index, found.site.start) for found in plan.found}
    for item in plan.items:
        if isinstance(item, Document):
            yield from find_unclaimed(item, claimed)


def images_list(rows: list[dict[str, Any]]) -> str:
    """`rewriter images`: one `SOURCE TARGET` line per distinct image, for copy scripts."""
    return "".join(f"{row['source']} {row['target']}\n" for row in rows)


def image_rows(plan: Plan, additional: Sequence[Decided] = ()) -> list[dict[str, Any]]:
    """The distinct images in first-seen order (the manifests', then a KOTS Application's
    additionalImages), with the name each becomes.

    `source` and `target` are what a copy tool takes: an image written with a tag and a
    digest is named by its digest only (skopeo and crane refuse both, and the digest is
    what the kubelet pulls); `image` is the value as written. Raises, naming them, when
    any image cannot be rewritten: a copy loop must never get `SOURCE SOURCE` for it.
    """
    decided: dict[ImageRef, Decision] = {}
    for found in plan.found:
        assert found.decision is not None
        decided.setdefault(found.ref, found.decision)
    for ref, decision in additional:
        decided.setdefault(ref, decision)
    # Additional images can collide with the manifests' (air-gap flattening).
    decided.update(collisions(decided))
    rows: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for ref, decision in decided.items():
        if ref.text in rows:
            continue
        if decision.action is Action.FAIL:
            failures.append(f"  {ref.text}: {decision.reason}")
        target = ImageRef.parse(decision.new_text) if decision.new_text else ref
        rows[ref.text] = {
            "source": _copyable(ref),
            "target": _copyable(target),
            "action": decision.action.value,
            "reason": decision.reason,
            "image": ref.text,
        }
    if failures:
        raise RewriterError(
            "\n".join([f"{len(failures)} image(s) cannot be rewritten:", *failures])
        )
    return list(rows.values())


Decided = tuple[ImageRef, Decision]


def decide_additional(images: Sequence[str], rules: Rules, prober: Prober) -> list[Decided]:
    """A KOTS Application's additionalImages, decided like the manifests' images (the
    prober warns of those not found or not probed)."""
    refs: dict[str, ImageRef] = {}
    for text in images:
        try:
            refs.setdefault(text, ImageRef.parse(text))
        except InvalidReference as exc:
            raise RewriterError(
                f"the Application's additionalImages: invalid image reference {text!r} ({exc})"
            ) from None
    to_probe = [ref for ref in refs.values() if decide_by_rule(ref, rules) is None]
    answers = prober(to_probe) if to_probe else {}
    result = []
    for ref in refs.values():
        result.append((ref, decide(ref, rules, answers.get(ref.probe_key))))
    return result


def _copyable(ref: ImageRef) -> str:
    """The reference with its digest only when it has both a tag and a digest."""
    if ref.tag is not None and ref.digest is not None:
        return f"{ref.locator}@{ref.digest}"
    return ref.text


def _resource(found: Found) -> str:
    return found.site.resource.label().replace(" ", "/", 1)
