"""A small, safe YAML loader that keeps positions.

It composes YAML from libyaml's event stream (pure Python where libyaml is absent)
into ``YMap``/``YSeq``/``YScalar`` nodes that carry their file position. It never
constructs a tagged Python object, refuses duplicate keys, and stops early at the
limits (nesting depth, nodes after alias expansion), so that hostile files fail fast.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from .errors import Pos, SpecError

MAX_DEPTH = 1_000
MAX_NODES = 2_000_000
MAX_INT = 2**63

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null")}
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()


@dataclass(slots=True, eq=False)
class YScalar:
    value: Any
    pos: Pos
    quoted: bool = False
    #: for a block scalar (``|`` or ``>``): the file line (1-based) of the value's first line and the
    #: column offset (0-based) of its content, so that a position inside the text maps to the file
    block: tuple[int, int] | None = None

    def text_pos(self, line: int, col: int) -> Pos:
        """The file position of 1-based ``line``, 0-based ``col`` of this scalar's text."""
        p = self.pos
        if self.block is not None:
            first, indent = self.block
            return Pos(p.file, first + line - 1, indent + col + 1)
        if line == 1:
            return Pos(p.file, p.line, (p.col or 1) + col + (1 if self.quoted else 0))
        return Pos(p.file, (p.line or 1) + line - 1, col + 1)

    @property
    def kind(self) -> str:
        return "scalar"


@dataclass(slots=True, eq=False)
class YSeq:
    items: list[YNode]
    pos: Pos

    @property
    def kind(self) -> str:
        return "list"


@dataclass(slots=True, eq=False)
class YMap:
    entries: dict[str, YNode]
    pos: Pos
    key_pos: dict[str, Pos] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "mapping"


YNode = Union[YScalar, YSeq, YMap]


def plain(node: YNode) -> Any:
    """The node as plain Python data (lists, dicts, scalars), for values that are not structure."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [plain(i) for i in node.items]
    return {k: plain(v) for k, v in node.entries.items()}


def _pos(filename: str, mark: Any) -> Pos:
    return Pos(filename, mark.line + 1, mark.column + 1)


def decode(data: bytes, filename: str) -> str:
    """UTF-8 text of a file, or a located error for binary and non-UTF-8 bytes."""
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise SpecError.at(Pos(filename, line, 1), "not a text file (NUL byte)", "model files are UTF-8 YAML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise SpecError.at(
            Pos(filename, line, col),
            f"invalid UTF-8 byte 0x{data[exc.start]:02x}",
            "save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


class _Frame:
    __slots__ = ("node", "size", "key", "key_pos", "merges", "anchor")

    def __init__(self, node: YMap | YSeq, anchor: str | None) -> None:
        self.node = node
        self.anchor = anchor
        self.size = 1
        self.key: str | None = None
        self.key_pos: Pos | None = None
        self.merges: list[tuple[Pos, YNode]] = []


@functools.lru_cache(maxsize=4096)
def _tag(tag: str | None, text: str, implicit: tuple[bool, bool]) -> str:
    """The scalar's tag, resolved as YAML's safe loader would when it is implicit."""
    if tag is None or tag == "!":
        return str(_resolver.resolve(yaml.ScalarNode, text, implicit))  # type: ignore[no-untyped-call]
    return tag


@functools.lru_cache(maxsize=4096)
def _value(tag: str, text: str) -> Any:
    """Cached: a model file repeats the same scalars (``ReLU``, ``Linear(16, 16)``) many times, and
    every value a safe scalar tag constructs is immutable."""
    return _constructor.construct_object(yaml.ScalarNode(tag, text))


def _scalar(event: Any, filename: str) -> YScalar:
    pos = _pos(filename, event.start_mark)
    tag = _tag(event.tag, event.value, event.implicit)
    if tag not in _SCALAR_TAGS:
        raise SpecError.at(pos, f"YAML tag '{tag.replace(_CORE, '!!')}' is not allowed", "model files are plain data; remove the tag")
    try:
        value = _value(tag, event.value)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError.at(pos, f"bad {tag.replace(_CORE, '')} value {event.value!r}: {exc}") from None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise SpecError.at(pos, "integer out of range (limit 2**63)")
    return YScalar(value, pos, quoted=event.style in ("'", '"'))


def load(text: str, filename: str) -> YNode:
    """Parse one YAML document into positioned nodes; any problem raises a located SpecError."""
    if not text.strip():
        raise SpecError.at(Pos(filename, 1, 1), "empty file", "a model file starts with 'netinspect: 1'")
    try:
        return _compose(text, filename)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = _pos(filename, mark) if mark is not None else Pos(filename, 1, 1)
        message = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "invalid YAML"
        if "nesting depth" in message:  # newer libyaml stops deep nesting itself (at 1,000 levels, as we do)
            raise SpecError.at(pos, f"YAML nested deeper than {MAX_DEPTH} levels") from None
        hint = None
        line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
        if "\t" in line[: (mark.column + 1 if mark is not None else 0)] or "'\\t'" in message:
            hint = "YAML does not allow tabs for indentation; use spaces"
        raise SpecError.at(pos, f"YAML syntax: {message}", hint) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        at_line = before.count("\n") + 1
        at_col = len(before) - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character) if exc.character else 0
        what = f"the control character U+{char:04X}"
        raise SpecError.at(
            Pos(filename, at_line, at_col),
            f"{what} is not allowed in YAML",
            "remove it, or write it as an escape in a double-quoted string",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError.at(Pos(filename, 1, 1), f"YAML syntax: {exc}") from None
    except RecursionError:
        raise SpecError.at(Pos(filename, 1, 1), f"YAML nested deeper than {MAX_DEPTH} levels") from None


def _compose(text: str, filename: str) -> YNode:
    anchors: dict[str, tuple[YNode, int]] = {}
    stack: list[_Frame] = []
    root: YNode | None = None
    root_size = 0
    documents = 0
    file_lines: list[str] | None = None  # split once, when the first block scalar needs it
    total = 0

    def attach(node: YNode, size: int, anchor: str | None, start: Any) -> None:
        nonlocal root, root_size, total
        if anchor:
            anchors[anchor] = (node, size)
        if not stack:
            root, root_size = node, size
            return
        frame = stack[-1]
        frame.size += size
        total += size
        if total > MAX_NODES:
            raise SpecError.at(
                _pos(filename, start),
                f"more than {MAX_NODES:,} YAML nodes after aliases are expanded",
                "an alias bomb? anchors and aliases copy configuration; they cannot grow a file without bound",
            )
        parent = frame.node
        if isinstance(parent, YSeq):
            parent.items.append(node)
            return
        if frame.key is None:
            if not isinstance(node, YScalar):
                raise SpecError.at(node.pos, "mapping keys must be plain scalars")
            frame.key = str(node.value)
            frame.key_pos = node.pos
            return
        key_name, key_pos = frame.key, frame.key_pos
        frame.key = None
        assert key_pos is not None
        if key_name == "<<":
            frame.merges.append((key_pos, node))
            return
        if key_name in parent.entries:
            first = parent.key_pos[key_name]
            raise SpecError.at(key_pos, f"duplicate key '{key_name}'", f"first defined at line {first.line}")
        parent.entries[key_name] = node
        parent.key_pos[key_name] = key_pos

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise SpecError.at(_pos(filename, event.start_mark), "more than one YAML document", "remove the '---' separator")
        elif isinstance(event, yaml.ScalarEvent):
            if stack and isinstance(stack[-1].node, YMap) and stack[-1].key is None:
                # a key: keep its text as written
                pos = _pos(filename, event.start_mark)
                if event.tag not in (None, "!") and event.tag not in _SCALAR_TAGS:
                    raise SpecError.at(pos, f"YAML tag '{event.tag}' is not allowed")
                attach(YScalar(event.value, pos), 1, event.anchor, event.start_mark)
            else:
                scalar = _scalar(event, filename)
                if event.style in ("|", ">") and isinstance(scalar.value, str) and event.start_mark is not None:
                    if file_lines is None:
                        file_lines = text.splitlines()
                    scalar.block = _block_origin(file_lines, event.start_mark.line, scalar.value)
                attach(scalar, 1, event.anchor, event.start_mark)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            pos = _pos(filename, event.start_mark)
            is_map = isinstance(event, yaml.MappingStartEvent)
            expected = f"{_CORE}map" if is_map else f"{_CORE}seq"
            if event.tag not in (None, "!", expected):
                raise SpecError.at(
                    pos, f"YAML tag '{event.tag.replace(_CORE, '!!')}' is not allowed", "model files are plain data; remove the tag"
                )
            if stack and isinstance(stack[-1].node, YMap) and stack[-1].key is None:
                raise SpecError.at(pos, "mapping keys must be plain scalars")
            if len(stack) >= MAX_DEPTH:
                raise SpecError.at(pos, f"YAML nested deeper than {MAX_DEPTH} levels")
            stack.append(_Frame(YMap({}, pos) if is_map else YSeq([], pos), event.anchor))
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            frame = stack.pop()
            total -= frame.size - 1
            if isinstance(frame.node, YMap) and frame.merges:
                _merge(frame.node, frame.merges)
            attach(frame.node, frame.size, frame.anchor, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            pos = _pos(filename, event.start_mark)
            if event.anchor not in anchors:
                raise SpecError.at(pos, f"unknown alias '*{event.anchor}'")
            node, size = anchors[event.anchor]
            if stack and isinstance(stack[-1].node, YMap) and stack[-1].key is None:
                raise SpecError.at(pos, "an alias cannot be a mapping key")
            attach(node, size, None, event.start_mark)
    if root is None:
        raise SpecError.at(Pos(filename, 1, 1), "empty file", "a model file starts with 'netinspect: 1'")
    if root_size > MAX_NODES:
        raise SpecError.at(root.pos, f"more than {MAX_NODES:,} YAML nodes after aliases are expanded")
    return root


def _block_origin(file_lines: list[str], header: int, value: str) -> tuple[int, int]:
    """(file line of the value's first line, content indent) of a block scalar whose ``|``/``>``
    header is on 0-based line ``header`` of ``file_lines``: the indent is read off the first non-blank line."""
    for k, vline in enumerate(value.split("\n")):
        if vline.strip() and header + 1 + k < len(file_lines):
            fline = file_lines[header + 1 + k]
            lead = len(fline) - len(fline.lstrip(" "))
            return header + 2, max(lead - (len(vline) - len(vline.lstrip(" "))), 0)
    return header + 2, 0


def _merge(target: YMap, merges: list[tuple[Pos, YNode]]) -> None:
    """YAML merge keys (``<<: *base``): explicit keys win, earlier merges win over later."""
    sources: list[YMap] = []
    for pos, node in merges:
        if isinstance(node, YMap):
            sources.append(node)
        elif isinstance(node, YSeq) and all(isinstance(i, YMap) for i in node.items):
            sources.extend(i for i in node.items if isinstance(i, YMap))
        else:
            raise SpecError.at(pos, "'<<' merges a mapping or a list of mappings")
    for source in sources:
        for key, value in source.entries.items():
            if key not in target.entries:
                target.entries[key] = value
                target.key_pos[key] = source.key_pos[key]
