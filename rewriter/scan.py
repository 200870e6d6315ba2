"""`rewriter scan`: what the render would do to each image, as a table or as JSON.

The JSON form is a stable schema (documented in the README): a list of objects with the
keys below; new keys may be added, existing ones keep their meaning.
"""

from __future__ import annotations

import json
from typing import Any

from rewriter.render import Found, Plan

SCHEMA_VERSION = 1


def rows(the_plan: Plan) -> list[dict[str, Any]]:
    result = []
    for found in the_plan.found:
        decision, probe, resource = found.decision, found.probe, found.site.resource
        assert decision is not None
        result.append(
            {
                "document": found.doc.index,
                "line": found.doc.chunk.first_line + found.site.node.start_mark.line,
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
            }
        )
    return result


def as_json(the_plan: Plan) -> str:
    return json.dumps({"version": SCHEMA_VERSION, "images": rows(the_plan)}, indent=2) + "\n"


def as_table(the_plan: Plan) -> str:
    header = ("DOC", "RESOURCE", "FIELD", "IMAGE", "ACTION", "REASON", "NEW IMAGE")
    lines = [header]
    for row, found in zip(rows(the_plan), the_plan.found, strict=True):
        lines.append(
            (
                str(row["document"]),
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


def _resource(found: Found) -> str:
    return found.site.resource.label().replace(" ", "/", 1)
