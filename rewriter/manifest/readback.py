"""Read fields back from an edited document, from libyaml's events, in constant memory.

`render._verify` checks every edited document: it must still be YAML, and each image and
each field that says which object it is must read as decided at the same field path.
Composing the edited text for that builds a node tree of ~35 times the text (a 10 MiB
Pod: ~350 MiB) next to the plan's own tree of the same document. Here libyaml's events
go by one at a time and only the scalars at the wanted paths are kept: what grows with
the document is the parse time, not the memory.

Only what the event stream shows without resolving is read this way. An alias or a
`<<` merge on the way to a wanted field means the field may read as another node's
value; the reader then answers None and the caller composes instead (documents with
anchors are the rare case, and the tree composes what kubectl reads).
"""

from __future__ import annotations

from collections.abc import Collection

from yaml import events
from yaml._yaml import CParser
from yaml.composer import ComposerError

MERGE_TAG = "tag:yaml.org,2002:merge"
_NOT_A_NAME = frozenset(".[]")  # a key with these could spell another field's path

_STARTS = (events.MappingStartEvent, events.SequenceStartEvent)
_ENDS = (events.MappingEndEvent, events.SequenceEndEvent)


class _Frame:
    """A mapping or sequence on a wanted path, being read."""

    __slots__ = ("expect_key", "index", "key", "mapping", "path")

    def __init__(self, path: str, mapping: bool) -> None:
        self.path = path
        self.mapping = mapping
        self.key: str | None = None  # the key whose value comes next (mappings)
        self.expect_key = True
        self.index = 0  # the next item's index (sequences)


def read_fields(text: str, paths: Collection[str]) -> dict[str, list[str | None]] | None:
    """What each of `paths` (as `fields.format_path` writes them: `items[1].spec.x[0].y`)
    holds in the single document `text`: every node found there, a scalar's text or None
    for a collection (a path met twice, by a duplicate key, lists both). Paths not in
    the document are absent.

    None when an alias or a merge key lies on the way to a wanted path. Raises
    yaml.YAMLError when the text is not one well-formed YAML document, as compose would.
    """
    wanted = set(paths)
    # Every collection on the way to a wanted path is followed; any other is skipped.
    prefixes = {""}
    for field in wanted:
        for at, char in enumerate(field):
            if char in ".[":
                prefixes.add(field[:at])
    found: dict[str, list[str | None]] = {}
    stack: list[_Frame] = []
    skip = 0  # depth inside a collection nobody asked about
    documents = 0
    parser = CParser(text)
    try:
        while True:
            event = parser.get_event()
            if skip:
                if isinstance(event, _STARTS):
                    skip += 1
                elif isinstance(event, _ENDS):
                    skip -= 1
                continue
            if isinstance(event, _ENDS):
                stack.pop()
                continue
            if isinstance(event, events.StreamEndEvent):
                return found
            if isinstance(event, events.DocumentStartEvent):
                documents += 1
                if documents > 1:  # as compose() refuses it
                    raise ComposerError(
                        "expected a single document in the stream",
                        None,
                        "but found another document",
                    )
                continue
            if not isinstance(event, events.NodeEvent):
                continue  # stream start, document end
            # A node: where is it?
            path: str | None = ""
            if stack:
                frame = stack[-1]
                if frame.mapping and frame.expect_key:
                    frame.expect_key = False
                    if isinstance(event, events.AliasEvent):
                        return None  # an aliased key: its text is elsewhere
                    if isinstance(event, events.ScalarEvent):
                        key = str(event.value)
                        if key == "<<" or event.tag == MERGE_TAG:
                            return None  # the merged map may supply wanted keys
                        frame.key = None if _NOT_A_NAME.intersection(key) else key
                    else:
                        frame.key = None  # a collection as a key: not a field name
                        skip = 1
                    continue
                if frame.mapping:
                    frame.expect_key = True
                    if frame.key is None:
                        path = None
                    else:
                        path = f"{frame.path}.{frame.key}" if frame.path else frame.key
                else:
                    path = f"{frame.path}[{frame.index}]"
                    frame.index += 1
            if isinstance(event, events.ScalarEvent):
                if path in wanted:
                    found.setdefault(path, []).append(str(event.value))
            elif isinstance(event, events.AliasEvent):
                if path in wanted or path in prefixes:
                    return None
            else:  # a collection starts
                if path in wanted:
                    found.setdefault(path, []).append(None)
                if path is not None and path in prefixes:
                    stack.append(_Frame(path, isinstance(event, events.MappingStartEvent)))
                else:
                    skip = 1
    finally:
        parser.dispose()
