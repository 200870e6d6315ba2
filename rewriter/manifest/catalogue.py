"""The built-in catalogue of custom resources' image fields (data in catalogue.yaml)."""

from __future__ import annotations

import functools
from importlib import resources

import yaml

from rewriter.config import parse_config
from rewriter.manifest.fields import FieldTable


@functools.cache
def builtin() -> FieldTable:
    """The standard pod-spec shapes plus every catalogue entry."""
    data = resources.files("rewriter.manifest").joinpath("catalogue.yaml")
    text = data.read_text(encoding="utf-8")
    catalogue = parse_config(yaml.load(text, Loader=yaml.CSafeLoader), "built-in catalogue")
    return FieldTable().extended(catalogue.pod_specs, catalogue.images)
