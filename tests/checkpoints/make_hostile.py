"""The hostile checkpoint corpus, generated into a folder at test time (so the repository stays small).

``make_corpus(root)`` writes one sub-folder per case and returns the cases: the MODEL to give, the
file the one error line must name, and words that line must contain (the tensor or key, the fault).
Run as a script it writes the corpus into a folder: ``python tests/checkpoints/make_hostile.py DIR``.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CAP = 100_000_000

#: Every case, in the order make_corpus writes them (tests are parametrized by these names).
NAMES = (
    "empty",
    "short",
    "length_past_file",
    "length_2_63",
    "length_2_64_minus_1",
    "length_over_cap",
    "not_json",
    "json_list",
    "json_padded_list",
    "not_utf8",
    "deep_json",
    "nan_in_header",
    "duplicate_name",
    "unknown_dtype",
    "dtype_not_string",
    "negative_shape",
    "huge_shape",
    "overflowing_shape",
    "float_shape",
    "bool_shape",
    "offsets_out_of_bounds",
    "offsets_huge",
    "offsets_negative",
    "offsets_not_pair",
    "offsets_size_mismatch",
    "overlapping",
    "same_offsets_other_dtype",
    "hole",
    "truncated",
    "trailing_bytes",
    "entry_not_object",
    "entry_missing_fields",
    "metadata_not_strings",
    "aliases_not_json",
    "aliases_missing_target",
    "aliases_shadow_tensor",
    "index_parent",
    "index_absolute",
    "index_subdir",
    "index_missing_shard",
    "index_not_a_file_name",
    "index_link_outside",
    "index_link_loop",
    "index_key_missing_from_shard",
    "shard_key_missing_from_index",
    "shard_key_mapped_elsewhere",
    "index_bad_shard",
    "index_not_json",
    "index_no_weight_map",
    "index_weight_map_list",
    "index_duplicate_key",
    "index_deep",
    "folder_empty",
    "folder_file_link_loop",
    "folder_link_loop",
    "pt_needs_code",
    "pt_raw_pickle_code",
    "pt_empty",
    "bin_garbage",
    "pt_truncated",
    "pt_not_a_state_dict",
    "dcp_metadata_code",
    "dcp_metadata_garbage",
    "dcp_metadata_not_metadata",
    "dcp_storage_parent",
    "dcp_storage_absolute",
    "dcp_storage_missing",
    "dcp_storage_past_end",
    "dcp_chunk_outside",
)


@dataclass(frozen=True)
class Case:
    name: str
    model: str  # what is given as MODEL (a file or a folder)
    file: str  # the file the error line names
    words: tuple[str, ...]  # substrings of that line
    torch_free: bool = True  # safetensors and index cases never import torch


def safetensors_bytes(header: Any, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors file: 8-byte little-endian header length, the header (JSON unless bytes), the data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def f32(n: int, begin: int = 0, shape: list[int] | None = None) -> dict[str, Any]:
    return {"dtype": "F32", "shape": shape if shape is not None else [n], "data_offsets": [begin, begin + 4 * n]}


GOOD = {"w": f32(2), "b": f32(1, 8)}
GOOD_DATA = bytes(12)


class Evil:
    """A pickle that runs a shell command when loaded by a plain unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _safetensors_cases() -> dict[str, tuple[bytes | Callable[[Path], None], tuple[str, ...]]]:
    deep = b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return {
        "empty": (b"", ("empty file",)),
        "short": (b"\x01\x02\x03", ("too short",)),
        "length_past_file": (safetensors_bytes(b'{"w": 1}', length=1000), ("header length 1,000", "larger than the file")),
        "length_2_63": (safetensors_bytes(b"{}", length=2**63), ("header length 9,223,372,036,854,775,808", "limit")),
        "length_2_64_minus_1": (safetensors_bytes(b"{}", length=2**64 - 1), ("limit",)),
        "length_over_cap": (_sparse_over_cap, ("header length 100,000,001", "limit")),
        "not_json": (safetensors_bytes(b"{not json"), ("not valid JSON",)),
        "json_list": (safetensors_bytes(b"[1, 2]"), ("not a JSON object",)),
        "json_padded_list": (safetensors_bytes(b"{}  [1]"), ("not valid JSON",)),
        "not_utf8": (safetensors_bytes(b'{"\xff\xfe": 1}'), ("not UTF-8",)),
        "deep_json": (safetensors_bytes(deep), ("nested more than 64 levels",)),
        "nan_in_header": (safetensors_bytes(b'{"w": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 0]}}'), ("not valid JSON",)),
        "duplicate_name": (
            safetensors_bytes(
                b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
                bytes(4),
            ),
            ("'w' twice",),
        ),
        "unknown_dtype": (
            safetensors_bytes({"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
            ("'w'", "unknown dtype 'F33'"),
        ),
        "dtype_not_string": (
            safetensors_bytes({"w": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
            ("'w'", "unknown dtype"),
        ),
        "negative_shape": (safetensors_bytes({"w": f32(2, shape=[-1, 2])}, bytes(8)), ("'w'", "negative")),
        "huge_shape": (safetensors_bytes({"w": f32(1, shape=[2**40, 2**40])}, bytes(4)), ("'w'", "overflows")),
        "overflowing_shape": (safetensors_bytes({"w": f32(1, shape=[2**64 + 1])}, bytes(4)), ("'w'", "overflows")),
        "float_shape": (safetensors_bytes({"w": f32(1, shape=[1.0])}, bytes(4)), ("'w'", "not a list of integers")),  # type: ignore[list-item]
        "bool_shape": (safetensors_bytes({"w": f32(1, shape=[True])}, bytes(4)), ("'w'", "not a list of integers")),  # type: ignore[list-item]
        "offsets_out_of_bounds": (
            safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 10**12]}}, bytes(4)),
            ("'w'", "past the end"),
        ),
        "offsets_huge": (
            safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [2**70, 2**70 + 4]}}, bytes(4)),
            ("'w'", "past the end"),
        ),
        "offsets_negative": (safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, bytes(4)), ("'w'", "begin")),
        "offsets_not_pair": (
            safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4]}}, bytes(4)),
            ("'w'", "[begin, end]"),
        ),
        "offsets_size_mismatch": (safetensors_bytes({"w": f32(2, 0) | {"data_offsets": [0, 4]}}, bytes(4)), ("'w'", "needs 8")),
        "overlapping": (safetensors_bytes({"a": f32(2, 0), "b": f32(2, 4)}, bytes(12)), ("'a'", "'b'", "overlap")),
        "same_offsets_other_dtype": (
            safetensors_bytes({"a": f32(1, 0), "b": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
            ("'a'", "'b'", "overlap"),
        ),
        "hole": (safetensors_bytes({"a": f32(2, 0), "b": f32(2, 12)}, bytes(20)), ("hole", "'b'")),
        "truncated": (safetensors_bytes(GOOD, GOOD_DATA[:6]), ("past the end", "truncated")),
        "trailing_bytes": (safetensors_bytes(GOOD, GOOD_DATA + b"xx"), ("2 bytes after the last tensor",)),
        "entry_not_object": (safetensors_bytes({"w": 5}), ("'w'", "not a JSON object")),
        "entry_missing_fields": (safetensors_bytes({"w": {"dtype": "F32"}}), ("'w'", "lacks 'shape', 'data_offsets'")),
        "metadata_not_strings": (safetensors_bytes({"__metadata__": {"format": 1}, **GOOD}, GOOD_DATA), ("__metadata__", "'format'")),
        "aliases_not_json": (
            safetensors_bytes({"__metadata__": {"netinspect.aliases": "{oops"}, **GOOD}, GOOD_DATA),
            ("netinspect.aliases", "not valid JSON"),
        ),
        "aliases_missing_target": (
            safetensors_bytes({"__metadata__": {"netinspect.aliases": '{"head": "nope"}'}, **GOOD}, GOOD_DATA),
            ("'head'", "'nope'"),
        ),
        "aliases_shadow_tensor": (
            safetensors_bytes({"__metadata__": {"netinspect.aliases": '{"w": "b"}'}, **GOOD}, GOOD_DATA),
            ("alias 'w'", "also a tensor"),
        ),
    }


def _sparse_over_cap(path: Path) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", CAP + 1) + b"{")
        f.truncate(CAP + 100)  # sparse: the length is "possible" for this file, but over the cap


def _index(folder: Path, weight_map: dict[str, str], shards: dict[str, bytes] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (shards or {}).items():
        (folder / name).write_bytes(data)
    path = folder / "model.safetensors.index.json"
    path.write_text(json.dumps({"metadata": {"total_size": 12}, "weight_map": weight_map}))
    return path


def make_corpus(root: Path, marker: Path | None = None) -> list[Case]:
    """Write every case under ``root`` (one folder each); ``marker`` is the file a code payload would create."""
    marker = marker or root / "pwned"
    cases: list[Case] = []
    for name, (content, words) in _safetensors_cases().items():
        folder = root / name
        folder.mkdir(parents=True)
        path = folder / "model.safetensors"
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
        cases.append(Case(name, str(path), str(path), words))
    cases += _index_cases(root)
    cases += _folder_cases(root)
    cases += _torch_cases(root, marker)
    cases += _dcp_cases(root, marker)
    return cases


def _index_cases(root: Path) -> list[Case]:
    good = {"a.safetensors": safetensors_bytes(GOOD, GOOD_DATA)}
    both = {"w": "a.safetensors", "b": "a.safetensors"}
    out: list[Case] = []

    def add(name: str, weight_map: dict[str, str], words: tuple[str, ...], shards: dict[str, bytes] | None = None, file: str = "") -> Path:
        folder = root / name
        index = _index(folder, weight_map, good if shards is None else shards)
        out.append(Case(name, str(index), str(folder / file if file else index), words))
        return folder

    outside = root / "outside.safetensors"
    outside.write_bytes(safetensors_bytes(GOOD, GOOD_DATA))
    add("index_parent", {"w": "../outside.safetensors", "b": "a.safetensors"}, ("'../outside.safetensors'", "not a plain file name"))
    add("index_absolute", {"w": "/etc/passwd", "b": "a.safetensors"}, ("'/etc/passwd'", "not a plain file name"))
    folder = add("index_subdir", {"w": "sub/a.safetensors", "b": "a.safetensors"}, ("'sub/a.safetensors'", "not a plain file name"))
    (folder / "sub").mkdir()
    (folder / "sub" / "a.safetensors").write_bytes(safetensors_bytes(GOOD, GOOD_DATA))
    add("index_missing_shard", {**both, "x": "missing.safetensors"}, ("'missing.safetensors'", "does not exist"))
    add("index_not_a_file_name", {"w": 7, "b": "a.safetensors"}, ("'w'", "not a file name"))  # type: ignore[dict-item]
    folder = add("index_link_outside", {"w": "link.safetensors", "b": "a.safetensors"}, ("'link.safetensors'", "outside"))
    os.symlink(outside, folder / "link.safetensors")
    folder = add("index_link_loop", {**both, "x": "loop1.safetensors"}, ("'loop1.safetensors'", "loop"))
    os.symlink("loop2.safetensors", folder / "loop1.safetensors")
    os.symlink("loop1.safetensors", folder / "loop2.safetensors")
    add("index_key_missing_from_shard", {**both, "extra": "a.safetensors"}, ("'extra'", "does not hold it"))
    add("shard_key_missing_from_index", {"w": "a.safetensors"}, ("'b'", "does not list"), file="a.safetensors")
    add(
        "shard_key_mapped_elsewhere",
        {"w": "a.safetensors", "b": "c.safetensors"},
        ("'b'", "maps to c.safetensors"),
        shards={"a.safetensors": good["a.safetensors"], "c.safetensors": safetensors_bytes({"b": f32(1)}, bytes(4))},
        file="a.safetensors",
    )
    add(
        "index_bad_shard",
        both,
        ("hole",),
        shards={"a.safetensors": safetensors_bytes({"w": f32(2, 0), "b": f32(1, 12)}, bytes(16))},
        file="a.safetensors",
    )
    for name, text, words in (
        ("index_not_json", "{weight_map", ("not valid JSON",)),
        ("index_no_weight_map", '{"metadata": {}}', ("no weight_map",)),
        ("index_weight_map_list", '{"weight_map": ["a.safetensors"]}', ("no weight_map",)),
        ("index_duplicate_key", '{"weight_map": {"w": "a.safetensors", "w": "a.safetensors"}}', ("'w' twice",)),
        ("index_deep", '{"weight_map": ' + "[" * 50_000 + "]" * 50_000 + "}", ("nested",)),
    ):
        folder = root / name
        folder.mkdir()
        index = folder / "model.safetensors.index.json"
        index.write_text(text)
        out.append(Case(name, str(index), str(index), words))
    return out


def _folder_cases(root: Path) -> list[Case]:
    out: list[Case] = []
    empty = root / "folder_empty"
    empty.mkdir()
    out.append(Case("folder_empty", str(empty), str(empty), ("holds no checkpoint",)))
    loop = root / "folder_file_link_loop"
    loop.mkdir()
    os.symlink("model.safetensors", loop / "model.safetensors")
    out.append(Case("folder_file_link_loop", str(loop), str(loop / "model.safetensors"), ("loop of symbolic links",)))
    holder = root / "folder_link_loop"
    holder.mkdir()
    os.symlink("self", holder / "self")  # a folder link that points at itself
    looped = holder / "self"
    out.append(Case("folder_link_loop", f"{looped}/", str(looped), ("loop of symbolic links",)))
    return out


def _torch_cases(root: Path, marker: Path) -> list[Case]:
    import torch

    out: list[Case] = []

    def add(name: str, suffix: str, write: Callable[[Path], None], words: tuple[str, ...]) -> None:
        folder = root / name
        folder.mkdir()
        path = folder / f"weights{suffix}"
        write(path)
        out.append(Case(name, str(path), str(path), words, torch_free=False))

    add("pt_needs_code", ".pt", lambda p: torch.save({"w": torch.zeros(2), "x": Evil(marker)}, p), ("refused", "posix.system"))
    add("pt_raw_pickle_code", ".pth", lambda p: p.write_bytes(pickle.dumps(Evil(marker))), ("refused",))
    add("pt_empty", ".pt", lambda p: p.write_bytes(b""), ("empty file",))
    add("bin_garbage", ".bin", lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), ("not a readable PyTorch weights file",))

    def truncated(p: Path) -> None:
        torch.save({"w": torch.zeros(1000)}, p)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])

    add("pt_truncated", ".pt", truncated, ("not a readable PyTorch weights file",))
    add("pt_not_a_state_dict", ".pt", lambda p: torch.save([torch.zeros(2)], p), ("holds a list, not a state_dict",))
    return out


def _dcp_cases(root: Path, marker: Path) -> list[Case]:
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.filesystem import FileSystemReader

    out: list[Case] = []
    base = root / "dcp_base"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}, checkpoint_id=str(base))

    def variant(name: str, edit: Callable[[Any, Path], Any], words: tuple[str, ...], file: str = ".metadata") -> None:
        """A copy of the base checkpoint whose metadata ``edit`` changes (or, returning bytes, replaces)."""
        folder = root / name
        folder.mkdir()
        for f in base.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        md = FileSystemReader(str(base)).read_metadata()  # our own file: the real reader is fine here
        replaced = edit(md, folder)
        (folder / ".metadata").write_bytes(replaced if isinstance(replaced, bytes) else pickle.dumps(md))
        out.append(Case(name, str(folder), str(folder / file), words, torch_free=False))

    def code(md: Any, folder: Path) -> bytes:
        return pickle.dumps({"md": md, "x": Evil(marker)})

    def garbage(md: Any, folder: Path) -> bytes:
        return b"\x80\x04garbage"

    def storage(field: str, value: Any) -> Callable[[Any, Path], None]:
        def edit(md: Any, folder: Path) -> None:
            for info in md.storage_data.values():
                setattr(info, field, value)

        return edit

    def chunk_outside(md: Any, folder: Path) -> None:
        md.state_dict_metadata["w"].chunks[0].sizes = torch.Size([5, 3])

    def not_metadata(md: Any, folder: Path) -> bytes:
        return pickle.dumps({"state_dict_metadata": {}})

    variant("dcp_metadata_code", code, ("refused", "posix.system"))
    variant("dcp_metadata_garbage", garbage, ("not a readable checkpoint metadata file",))
    variant("dcp_metadata_not_metadata", not_metadata, ("not a checkpoint's Metadata",))
    variant("dcp_storage_parent", storage("relative_path", "../outside.distcp"), ("'../outside.distcp'", "not a plain file name"))
    variant("dcp_storage_absolute", storage("relative_path", "/etc/passwd"), ("'/etc/passwd'", "not a plain file name"))
    variant("dcp_storage_missing", storage("relative_path", "gone.distcp"), ("'gone.distcp'", "does not exist"))
    variant("dcp_storage_past_end", storage("length", 10**9), ("past the end",), file="__0_0.distcp")
    variant("dcp_chunk_outside", chunk_outside, ("'w'", "outside"))
    (root / "outside.distcp").write_bytes(b"")
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for case in make_corpus(target):
        print(f"{case.name:32} {case.model}")
