"""Read a user's YAML file safely: bounded in size, depth and alias expansion, strict about keys and types.

- Only regular files of at most ``MAX_BYTES`` are read (not ``/dev/zero``, not a FIFO that never ends).
- Nodes are composed from libyaml's events (C-accelerated where available) by an iterative composer
  that stops at ``MAX_DEPTH`` levels of nesting and once aliases have expanded to ``MAX_ALIASED_NODES``
  nodes ("billion laughs"), before anything is built from them.
- A key given twice in one mapping is an error naming the key and both lines (merges with ``<<`` may
  override keys, as YAML intends).
- Values are JSON's types only: dates, ``!!binary``, ``!!set``, ``!!omap`` and ``!!pairs`` are refused
  with a hint (quote the value, use a list or a mapping), so what is read renders the same every time.

Every problem is a ``YamlFileError`` whose message says what is wrong and where, without the file name.
"""

from __future__ import annotations

import gc
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 10 * 2**20
MAX_DEPTH = 64
MAX_ALIASED_NODES = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SHOWN_CHARS = 40


class YamlFileError(Exception):
    """A YAML file that cannot be used; the message says what is wrong and where (not which file)."""


def load_file(path: Path) -> Any:
    """The single YAML document in ``path``, as plain data (None for an empty file).

    Raises ``YamlFileError``, ``OSError`` (missing, unreadable) or ``UnicodeDecodeError``.
    """
    return load_text(read_text(path))


def read_text(path: Path) -> str:
    """A regular file's text, refusing special files and files over ``MAX_BYTES`` before reading them."""
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    if not stat.S_ISREG(mode):
        raise YamlFileError("not a regular file (a device, FIFO or socket cannot hold a stack); give a YAML file")
    with path.open("rb") as file:
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlFileError(f"larger than {MAX_BYTES // 2**20} MiB, the limit for a stack file")
    return data.decode("utf-8")


def load_text(text: str) -> Any:
    """The single YAML document in ``text`` as plain data; raises ``YamlFileError``."""
    loader = _StrictLoader(text)
    try:
        with _gc_paused():  # millions of young objects: the collector would otherwise dominate the run time
            node = _compose(loader)
            return None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlFileError(f"not valid YAML{where}: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise YamlFileError(f"not valid YAML: {error}") from None
    finally:
        loader.dispose()


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _cut(value: str) -> str:
    return value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."


def _shown(value: str) -> str:
    """A scalar for a message: cut first, then quoted."""
    return repr(_cut(value))


def _line(node_or_event: Any) -> int:
    return node_or_event.start_mark.line + 1


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, C-accelerated when libyaml is available, with non-JSON types refused."""

    def _refuse(self, node: yaml.Node, hint: str) -> Any:
        raise YamlFileError(f"line {_line(node)}: {hint}")

    def _date(self, node: yaml.ScalarNode) -> Any:
        value = _cut(node.value)
        return self._refuse(node, f'{value} is read as a date; quote it ("{value}") where text is meant')

    def _binary(self, node: yaml.Node) -> Any:
        return self._refuse(node, "!!binary values are not supported; write the text as a quoted string")

    def _set(self, node: yaml.Node) -> Any:
        return self._refuse(node, "!!set is not supported (it keeps no order); write a list")

    def _ordered(self, node: yaml.Node) -> Any:
        return self._refuse(node, f"!!{node.tag.rpartition(':')[2]} is not supported; write a mapping")


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader._date)
_StrictLoader.add_constructor("tag:yaml.org,2002:binary", _StrictLoader._binary)
_StrictLoader.add_constructor("tag:yaml.org,2002:set", _StrictLoader._set)
_StrictLoader.add_constructor("tag:yaml.org,2002:omap", _StrictLoader._ordered)
_StrictLoader.add_constructor("tag:yaml.org,2002:pairs", _StrictLoader._ordered)


@dataclass
class _Open:
    """A sequence or mapping whose end event has not come yet."""

    node: yaml.SequenceNode | yaml.MappingNode
    expanded_before: int  # nodes counted before this one: its expanded size is the count at its end minus this
    key: yaml.Node | None = None  # a mapping's key waiting for its value
    key_lines: dict[tuple[str, str], int] = field(default_factory=dict)


def _compose(loader: _StrictLoader) -> yaml.Node | None:
    """The document's node graph, built from parser events without recursion and within the bounds."""
    loader.get_event()  # stream start
    if loader.check_event(yaml.StreamEndEvent):
        return None
    loader.get_event()  # document start
    root: yaml.Node | None = None
    stack: list[_Open] = []
    anchors: dict[str | None, yaml.Node] = {}
    sizes: dict[int, int] = {}  # id(anchored node) -> its expanded size
    expanded = aliased = 0

    def attach(node: yaml.Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent.node, yaml.SequenceNode):
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
        else:
            key, parent.key = parent.key, None
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                first = parent.key_lines.get((key.tag, key.value))
                if first is not None:
                    raise YamlFileError(
                        f"line {_line(key)}: duplicate key {_shown(key.value)} (first at line {first});"
                        " a key may appear once in a mapping"
                    )
                parent.key_lines[(key.tag, key.value)] = _line(key)
            parent.node.value.append((key, node))

    while not loader.check_event(yaml.DocumentEndEvent):
        event = loader.get_event()
        marks: Any = (event.start_mark, event.end_mark)  # the C and Python parsers have their own Mark classes
        if isinstance(event, yaml.AliasEvent):
            node = anchors.get(event.anchor)
            if node is None:
                raise YamlFileError(
                    f"line {_line(event)}: alias *{event.anchor} has no anchor &{event.anchor} before it"
                )
            if any(entry.node is node for entry in stack):
                raise YamlFileError(f"line {_line(event)}: alias *{event.anchor} refers to a node that contains it")
            expanded += sizes[id(node)]
            aliased += sizes[id(node)]
            if aliased > MAX_ALIASED_NODES:
                raise YamlFileError(
                    f"line {_line(event)}: aliases expand to more than {MAX_ALIASED_NODES} nodes;"
                    " a stack file needs no such repetition"
                )
            attach(node)
        elif isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = yaml.ScalarNode(tag, event.value, marks[0], marks[1], style=event.style)
            expanded += 1
            sizes[id(node)] = 1
            if event.anchor is not None:
                anchors[event.anchor] = node
            attach(node)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise YamlFileError(f"line {_line(event)}: nested more than {MAX_DEPTH} levels deep")
            kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(kind, None, event.implicit)
            collection = kind(tag, [], marks[0], None, flow_style=event.flow_style)
            if event.anchor is not None:
                anchors[event.anchor] = collection
            attach(collection)
            stack.append(_Open(collection, expanded))
            expanded += 1
        else:  # the end of a sequence or mapping
            entry = stack.pop()
            entry.node.end_mark = event.end_mark
            sizes[id(entry.node)] = expanded - entry.expanded_before
    loader.get_event()  # document end
    if not loader.check_event(yaml.StreamEndEvent):
        raise YamlFileError(f"line {_line(loader.peek_event())}: a second YAML document ('---'); a file holds one")
    return root
