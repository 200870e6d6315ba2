"""Where probe answers are kept: the `--cache` value, parsed, and shown without secrets.

Light on purpose (no sqlite3, no Redis client): the CLI parses `--cache` before it knows
whether any image needs the cache at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePath

from rewriter.errors import RewriterError


def default_cache_path() -> str:
    """$XDG_CACHE_HOME/rewriter/probes.sqlite, else ~/.cache/rewriter/probes.sqlite."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says relative values are to be ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "rewriter", "probes.sqlite"))


@dataclass(frozen=True)
class CacheSpec:
    kind: str  # "sqlite", "redis" or "none"
    location: str  # absolute path or URL; "" for none


def parse_spec(spec: str) -> CacheSpec:
    """A `--cache` value: an absolute path, a redis:// or rediss:// URL, or none."""
    text = spec.strip()
    if text.lower() == "none":
        return CacheSpec("none", "")
    if text.startswith(("redis://", "rediss://")):
        return CacheSpec("redis", text)
    if "://" in text:
        raise RewriterError(f"--cache {spec!r}: only redis:// and rediss:// URLs are supported")
    path = os.path.expanduser(text)
    if not text or not os.path.isabs(path):
        raise RewriterError(
            f"--cache {spec!r}: give an absolute path, a redis:// URL or 'none' "
            "(renders under Argo CD and kustomize run in a temporary directory, "
            "so a relative cache would start empty every time)"
        )
    path = os.path.normpath(path)
    if not PurePath(path).suffix:
        # requests-cache, which writes the file, adds `.sqlite` to a name without a
        # suffix: the reader, `cache info` and `cache clear` must name that same file.
        path += ".sqlite"
    return CacheSpec("sqlite", path)


def redact_url(url: str) -> str:
    """A Redis URL without its password, for display."""
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ':'}***@{host}"
