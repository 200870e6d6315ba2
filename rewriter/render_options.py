"""What the transform (render, scan, images, krm, the midstream) is given to work with.

Its own module so that settings, which builds it from the options, need not import
the transform, and the transform need not know where its options came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rewriter.decide import Rules
from rewriter.manifest.fields import FieldTable


@dataclass(frozen=True, slots=True)
class Options:
    """What the transform needs beyond the decision rules."""

    rules: Rules
    secret_name: str
    # host -> "user:password" for the Secret; empty when none were given
    credentials: tuple[tuple[str, str], ...] = ()
    missing_credentials: str = "a pull secret is needed but no credentials were given"
    pull_secrets: bool = True  # False: an anonymous local registry, no Secret at all
    annotate: bool = False  # record the original images on each changed resource
    namespace: str | None = None  # for resources without metadata.namespace
    additional_namespaces: tuple[str, ...] = ()
    strict: bool = False
    fields: FieldTable = field(default_factory=FieldTable)
