"""Sharded safetensors: ``*.safetensors.index.json`` (``{"metadata", "weight_map": {key: shard}}``),
torch-free. Every shard is a plain file name in the index's folder; every shard's header is read and
checked; the index and the shards must agree key for key (each mismatch is named)."""

from __future__ import annotations

import os
from typing import Any

from netinspect.errors import Pos, Problems
from netinspect.tables import TensorTable, natural_key

from . import safetensors
from .files import HEADER_CAP, fail, file_size, inside, load_json, read_at


def read_index(path: str, shown: str) -> dict[str, str]:
    """The index's ``weight_map`` (key → shard file name), checked."""
    size = file_size(path, shown)
    if size > HEADER_CAP:
        raise fail(shown, f"the index is {size:,} bytes, over the {HEADER_CAP:,}-byte limit")
    doc = load_json(read_at(path, 0, size, shown), shown, "the index")
    if not isinstance(doc, dict):
        raise fail(shown, "the index is not a JSON object", 'an index is {"metadata": {...}, "weight_map": {key: file}}')
    weight_map = doc.get("weight_map")
    if not isinstance(weight_map, dict):
        raise fail(shown, "the index has no weight_map object", 'an index is {"metadata": {...}, "weight_map": {key: file}}')
    if "metadata" in doc and not isinstance(doc["metadata"], (dict, type(None))):
        raise fail(shown, "the index's metadata is not a JSON object")
    for key, name in weight_map.items():
        if not isinstance(name, str):
            raise fail(shown, f"weight_map maps {key!r} to {name!r}, which is not a file name")
    return weight_map


def table(path: str, shown: str | None = None) -> TensorTable:
    """The keys of every shard, as the index lists them (in natural order)."""
    shown = shown or path
    weight_map = read_index(path, shown)
    folder, shown_folder = os.path.dirname(path) or ".", os.path.dirname(shown) or "."
    headers: dict[str, safetensors.Header] = {}
    for name in dict.fromkeys(weight_map.values()):
        shard = inside(folder, name, shown_folder, shown, "weight_map")
        headers[name] = safetensors.read_header(shard, os.path.join(os.path.dirname(shown), name))
    problems = Problems()
    listed = dict(weight_map)
    for name, header in headers.items():
        held = set(header.keys())
        for key in (k for k, n in weight_map.items() if n == name and k not in held):
            problems.add(Pos(shown), f"weight_map maps {key!r} to {name}, which does not hold it")
        for key in header.keys():
            if key not in weight_map and header.aliases.get(key, ("", ""))[1] == "alias":
                listed[key] = name  # a second name from the shard's metadata: the index need not list it
            elif key not in weight_map:
                problems.add(Pos(header.shown), f"holds {key!r}, which the index does not list", "the index and its shards disagree")
            elif weight_map[key] != name:
                problems.add(Pos(header.shown), f"holds {key!r}, which the index maps to {weight_map[key]}")
    problems.raise_if_any()
    keys = sorted(listed, key=natural_key)

    def read(key: str) -> Any:
        return safetensors.read_values(headers[listed[key]], key)

    return TensorTable(
        shown, "sharded safetensors", [headers[listed[k]].info(k) for k in keys], [shown, *(h.shown for h in headers.values())], read
    )
