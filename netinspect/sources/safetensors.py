"""safetensors files, header only and torch-free: the 8-byte little-endian length, the JSON header,
and every check the format asks (known dtypes, shapes, ``data_offsets`` that tile the data exactly).

Tensors stored once under several names: the ``netinspect.aliases`` metadata (alias → key, written by
``init --save``) and entries with equal ``data_offsets``. Values are read per tensor (seek and read of
its own bytes), only when asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from netinspect.errors import SpecError, did_you_mean
from netinspect.tables import TensorInfo, TensorTable, natural_key

from .files import HEADER_CAP, fail, file_size, load_json, read_at

ALIASES_KEY = "netinspect.aliases"

#: safetensors dtype → (torch's name, bits per element)
DTYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 8),
    "F4": ("float4_e2m1", 4),
    "F6_E2M3": ("float6_e2m3", 6),
    "F6_E3M2": ("float6_e3m2", 6),
    "U8": ("uint8", 8),
    "I8": ("int8", 8),
    "F8_E5M2": ("float8_e5m2", 8),
    "F8_E4M3": ("float8_e4m3fn", 8),
    "F8_E8M0": ("float8_e8m0fnu", 8),
    "F8_E4M3FNUZ": ("float8_e4m3fnuz", 8),
    "F8_E5M2FNUZ": ("float8_e5m2fnuz", 8),
    "I16": ("int16", 16),
    "U16": ("uint16", 16),
    "F16": ("float16", 16),
    "BF16": ("bfloat16", 16),
    "I32": ("int32", 32),
    "U32": ("uint32", 32),
    "F32": ("float32", 32),
    "C64": ("complex64", 64),
    "F64": ("float64", 64),
    "I64": ("int64", 64),
    "U64": ("uint64", 64),
}
#: The largest element count accepted (beyond it a shape overflows 64-bit byte offsets).
MAX_NUMEL = 2**63 - 1
#: More dimensions than any tensor has.
MAX_DIMS = 1024


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    dtype: str  # the safetensors code, e.g. BF16
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Header:
    """A checked header: where the data starts, every entry, the metadata and the aliases."""

    path: str
    shown: str
    size: int
    length: int
    entries: dict[str, Entry]
    metadata: dict[str, str] | None
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)  # alias → (stored name, "alias" | "offsets")

    @property
    def data_start(self) -> int:
        return 8 + self.length

    def keys(self) -> list[str]:
        return [*self.entries, *self.aliases]

    def info(self, key: str) -> TensorInfo:
        stored, via = self.aliases.get(key, (key, None))
        e = self.entries[stored]
        name, bits = DTYPES[e.dtype]
        return TensorInfo(key, e.shape, name, e.numel, e.numel * bits // 8, stored, via)


def read_header(path: str, shown: str | None = None) -> Header:
    """Read and check the header of one safetensors file (nothing past it is read)."""
    shown = shown or path
    size = file_size(path, shown)
    if size == 0:
        raise fail(shown, "empty file: not a safetensors file")
    if size < 8:
        raise fail(shown, f"{size} bytes: too short for a safetensors header")
    length = int.from_bytes(read_at(path, 0, 8, shown), "little")
    if length > HEADER_CAP:
        raise fail(shown, f"header length {length:,} is over the {HEADER_CAP:,}-byte limit", "the file is not safetensors, or is corrupt")
    if length > size - 8:
        raise fail(shown, f"header length {length:,} is larger than the file ({size:,} bytes)", "the file is truncated or not safetensors")
    raw = read_at(path, 8, length, shown)
    if raw[:1] != b"{":
        raise fail(shown, "the header is not a JSON object", "a safetensors header starts with '{'")
    doc = load_json(raw, shown, "the header")
    if not isinstance(doc, dict):
        raise fail(shown, "the header is not a JSON object")
    data_len = size - 8 - length
    metadata = _metadata(doc.pop("__metadata__", None), shown)
    entries = {name: _entry(name, value, data_len, shown) for name, value in doc.items()}
    header = Header(path, shown, size, length, entries, metadata)
    _tile(header, data_len)
    _aliases(header)
    return header


def _metadata(value: Any, shown: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail(shown, "__metadata__ is not a JSON object", "it maps names to strings")
    for k, v in value.items():
        if not isinstance(v, str):
            raise fail(shown, f"__metadata__ entry {k!r} is not a string", "__metadata__ maps names to strings")
    return value


def _entry(name: str, value: Any, data_len: int, shown: str) -> Entry:
    """One checked entry; the first fault is an error naming the tensor."""

    def bad(message: str, hint: str | None = None) -> SpecError:
        return fail(shown, f"tensor {name!r}: {message}", hint)

    if not isinstance(value, dict):
        raise bad("its entry is not a JSON object", 'an entry is {"dtype", "shape", "data_offsets"}')
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in value]
    if missing:
        raise bad("its entry lacks " + ", ".join(repr(m) for m in missing))
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise bad(f"unknown dtype {dtype!r}", did_you_mean(str(dtype), DTYPES) or "one of " + " ".join(DTYPES))
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(type(d) is int for d in shape):
        raise bad(f"shape {_short(shape)} is not a list of integers")
    if any(d < 0 for d in shape):
        raise bad(f"shape {_short(shape)} has a negative dimension")
    numel = 1
    for d in shape:
        numel *= d
        if numel > MAX_NUMEL:
            raise bad(f"shape {_short(shape)} overflows: more than 2**63 elements")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
        raise bad(f"data_offsets {_short(offsets)} is not [begin, end]")
    begin, end = offsets
    bits = DTYPES[dtype][1]
    if begin < 0 or end < begin:
        raise bad(f"data_offsets [{begin}, {end}] are not 0 <= begin <= end")
    if end > data_len:
        raise bad(f"data_offsets [{begin:,}, {end:,}] reach past the end of the data ({data_len:,} bytes)", "the file is truncated")
    if numel * bits % 8:
        raise bad(f"{numel:,} elements of {dtype} do not fill whole bytes")
    size = numel * bits // 8
    if end - begin != size:
        raise bad(f"data_offsets [{begin:,}, {end:,}] hold {end - begin:,} bytes, but shape {list(shape)} of {dtype} needs {size:,}")
    return Entry(name, dtype, tuple(shape), begin, end)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _tile(header: Header, data_len: int) -> None:
    """The entries must cover the data exactly: no hole, no overlap, nothing after the last one.
    Entries with the same non-empty byte range (and dtype and shape) are one tensor under two names."""
    pos = 0
    last: Entry | None = None  # the entry that ends at ``pos``
    for e in sorted(header.entries.values(), key=lambda e: (e.begin, e.end, natural_key(e.name))):
        if last is not None and e.end > e.begin and (e.begin, e.end) == (last.begin, last.end):
            if (e.dtype, e.shape) != (last.dtype, last.shape):
                raise fail(header.shown, f"tensors {last.name!r} and {e.name!r} overlap: both at data_offsets [{e.begin:,}, {e.end:,}]")
            header.aliases[e.name] = (last.name, "offsets")
            continue
        if e.begin < pos:
            other = last.name if last is not None else "?"
            raise fail(
                header.shown, f"tensors {other!r} and {e.name!r} overlap: data_offsets [{e.begin:,}, {e.end:,}] start before {pos:,}"
            )
        if e.begin > pos:
            raise fail(header.shown, f"a hole in the data: bytes {pos:,} to {e.begin:,} belong to no tensor (before {e.name!r})")
        if e.end > e.begin:
            pos, last = e.end, e
    if pos != data_len:
        raise fail(header.shown, f"{data_len - pos:,} bytes after the last tensor's data belong to no tensor", "the file has trailing data")
    for alias in header.aliases:
        del header.entries[alias]


def _aliases(header: Header) -> None:
    """``netinspect.aliases`` metadata: a JSON object alias → stored key."""
    text = (header.metadata or {}).get(ALIASES_KEY)
    if text is None:
        return
    doc = load_json(text.encode("utf-8"), header.shown, f"the {ALIASES_KEY} metadata")
    if not isinstance(doc, dict):
        raise fail(header.shown, f"the {ALIASES_KEY} metadata is not a JSON object", "it maps alias names to stored tensor names")
    for alias, key in doc.items():
        if not isinstance(key, str) or key not in header.entries:
            raise fail(header.shown, f"{ALIASES_KEY}: alias {alias!r} names {key!r}, which is not a tensor of the file")
        if alias in header.entries or alias in header.aliases:
            raise fail(header.shown, f"{ALIASES_KEY}: alias {alias!r} is also a tensor of the file")
        header.aliases[alias] = (key, "alias")


def read_values(header: Header, key: str) -> Any:
    """One tensor's values (torch imported here): only its own bytes are read."""
    import torch

    from netinspect.errors import UsageError

    stored = header.aliases.get(key, (key, None))[0]
    e = header.entries[stored]
    dtype = getattr(torch, DTYPES[e.dtype][0], None)
    if not isinstance(dtype, torch.dtype) or e.dtype in ("F4", "F6_E2M3", "F6_E3M2"):
        raise UsageError.at(
            None, f"'{key}' is {e.dtype}, which torch cannot hold element by element", "its shape and dtype are shown without --key"
        )
    data = read_at(header.path, header.data_start + e.begin, e.end - e.begin, header.shown)
    if not data:
        return torch.empty(e.shape, dtype=dtype)
    return torch.frombuffer(data, dtype=dtype).reshape(e.shape)


def table(path: str, shown: str | None = None) -> TensorTable:
    """A safetensors file as a tensor table (keys in natural order)."""
    header = read_header(path, shown)
    keys = sorted(header.keys(), key=natural_key)
    return TensorTable((shown or path), "safetensors", [header.info(k) for k in keys], [header.shown], lambda key: read_values(header, key))
