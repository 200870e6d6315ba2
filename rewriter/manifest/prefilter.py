"""What a document's raw bytes prove, before anything is composed.

Composing is the render's main cost, and most of a stream's bytes (CRDs, ConfigMaps)
cannot hold an image. A document may skip composing only when the YAML grammar proves it
holds nothing the render needs; when in doubt, it is composed (SPEC section 6). Both
checks here run in C (a regular expression, libyaml's first few parser events).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from yaml import YAMLError
from yaml._yaml import CParser
from yaml.events import (
    CollectionEndEvent,
    CollectionStartEvent,
    MappingStartEvent,
    ScalarEvent,
)

# Ways a key or value can read as a word without its letters appearing in the bytes: a
# double-quoted scalar's escapes (`"\x69mage"`, `"im\u0061ge"`, a line break escaped
# away), a binary scalar, or tags renamed by a %TAG directive.
_ESCAPE = re.compile(rb"\\[xuU\r\n]")
_OTHER_SPELLINGS = (b"!!binary", b"tag:yaml.org,2002:binary", b"%TAG")

# A root key other than the `kind` found could start a line with these: `kind` itself
# (a duplicate), a quoted or explicit key, or one with an anchor, tag or alias. Any such
# line leaves the kind unproven. Nested keys are indented and never match. (Matched
# after a line break rather than with `^`: re then scans for the break at C speed, which
# matters on CRDs of hundreds of KB.)
_OTHER_ROOT_KEY = re.compile(rb"\n(?:kind\b|[\"'?&!*])")

_STR_TAG = "tag:yaml.org,2002:str"
_MAX_EVENTS = 256  # `kind` comes in the first few keys; past this, compose instead


def could_spell(data: bytes, words: Iterable[bytes]) -> bool:
    """False only when no scalar of the document can read as one of `words`."""
    # Substring tests first: they run at memchr speed, a regular expression does not.
    if any(word in data for word in words):
        return True
    if b"\\" in data and _ESCAPE.search(data):
        return True
    return any(spelling in data for spelling in _OTHER_SPELLINGS)


def root_kind(data: bytes) -> str | None:
    """The document's `kind`, when the bytes prove it; None when they do not.

    Proof: libyaml reads a block mapping at column 0 whose key `kind` holds a string, and
    no other line could start another root key that reads `kind` (a duplicate), so the
    value is the one every YAML reader, kubectl included, sees.
    """
    parser = CParser(data)
    depth = 0
    key_line: int | None = None
    is_key = True  # at depth 1, scalars alternate: key, value
    try:
        for _ in range(_MAX_EVENTS):
            event = parser.get_event()
            if event is None:
                return None  # the end of the stream
            mark = event.start_mark
            assert mark is not None  # libyaml marks every event
            if isinstance(event, CollectionStartEvent):
                if depth == 0 and not (
                    isinstance(event, MappingStartEvent)
                    and not event.flow_style
                    and mark.column == 0
                ):
                    return None  # a root sequence, scalar, flow or indented mapping
                if depth == 1 and (is_key or key_line is not None):
                    return None  # a complex key, or `kind` holding a collection
                depth += 1
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
                if depth == 0:
                    return None  # the root mapping ended without a `kind`
                if depth == 1:
                    is_key = True
            elif depth == 1:
                if not isinstance(event, ScalarEvent):
                    return None  # an alias as the key or as the kind
                if key_line is not None:
                    if event.tag not in (None, _STR_TAG):
                        return None
                    return event.value if _only_root_kind(data, key_line) else None
                if is_key and event.value == "kind":
                    key_line = mark.line
                is_key = not is_key
    except YAMLError:
        return None  # the syntax check that follows reports it
    return None


def _only_root_kind(data: bytes, key_line: int) -> bool:
    text = b"\n" + data  # every line, the first too, now follows a line break
    for match in _OTHER_ROOT_KEY.finditer(text):
        if text.count(b"\n", 0, match.start()) != key_line:  # the line the match starts
            return False
    return True
