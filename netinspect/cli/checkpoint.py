"""The model commands when MODEL is a weights file or checkpoint (tree, params, state-dict, shared,
validate): they read its tensor table (for safetensors: headers only, without torch) and draw it
with the same renderer as a built model's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from netinspect import session
from netinspect.errors import DeviceError, UsageError, did_you_mean

if TYPE_CHECKING:
    from netinspect.tables import TensorTable


def no_build_flags(device: str, dtype: str | None, seed: int | None, allow: list[str] | None, weights: Path | None, partial: bool) -> None:
    """A checkpoint is read, not built: the flags of a build are refused (exit 2)."""
    flags = (("--device", device != "cpu"), ("--dtype", dtype is not None), ("--seed", seed is not None), ("--allow", bool(allow)))
    given = [f for f, on in (*flags, ("--weights", weights is not None), ("--partial", partial)) if on]
    if given:
        raise UsageError.at(
            None,
            f"{given[0]} does not apply to a checkpoint: its tensors are read from the file, not built",
            "leave it out, or give a model file and load the checkpoint with --weights",
        )


def _open(model: str, module: str | None = None) -> TensorTable:
    from netinspect import tables

    table = session.open_checkpoint(model)
    return tables.scoped(table, module) if module else table


def tree(model: str, depth: int | None, expand: bool, repr_: bool, as_json: bool) -> None:
    if repr_:
        raise UsageError.at(None, "--repr prints a built module, and a checkpoint holds tensors only", "give a model file (with --weights)")
    from netinspect import render, tables

    table = _open(model)
    root = tables.tree(table)
    if as_json:
        render.emit_json(render.ckpt_tree_json(table, root))
    else:
        render.emit(render.ckpt_tree_lines(table, root, depth, expand))


def params(model: str, module: str | None, as_json: bool) -> None:
    from netinspect import render, tables

    table = _open(model, module)
    rows, totals = tables.params(table)
    if as_json:
        session.check_shared_with({id(r.paths): r.paths for r in rows}.values(), "tensor", "rows")
        render.emit_json(render.ckpt_params_json(table, rows, totals))
    else:
        render.emit(render.ckpt_params_lines(table, rows, totals, module))


def state_dict(model: str, key: str | None, show_values: bool, module: str | None, as_json: bool) -> None:
    """Rows of every key; ``--key`` reads that tensor's bytes only, ``--values`` every tensor's."""
    from netinspect import render, tables

    table = _open(model, module)
    entries = tables.state_dict(table)
    if key is not None:
        entries = [e for e in entries if e.key == key]
        if not entries:
            keys = [e.key for e in table.entries]
            raise UsageError.at(None, f"no key {key!r} in {table.name}", did_you_mean(key, keys) or "keys: " + ", ".join(keys[:10]))
    if key is not None or show_values:
        _check_memory(table, [e.key for e in entries])
        for e in entries:
            e.tensor = table.values(e.key)
    if as_json:
        render.emit_json(render.ckpt_state_json(table, entries, key is not None or show_values))
    else:
        render.emit(render.ckpt_state_lines(table, entries, key is not None or show_values, key is not None))


def _check_memory(table: TensorTable, keys: list[str]) -> None:
    import torch

    from netinspect.devices import available_bytes
    from netinspect.units import human_bytes

    by_key = table.by_key()
    needed = sum(by_key[k].nbytes for k in keys)
    free = available_bytes(torch.device("cpu"))
    if free is not None and needed > free:
        raise DeviceError.at(
            None,
            f"the values need {human_bytes(needed)} ({needed:,} bytes), but cpu has {human_bytes(free)} available",
            "--key K reads one tensor",
        )


def shared(model: str, as_json: bool) -> None:
    from netinspect import render, tables

    table = _open(model)
    groups, unique, by_path = tables.shared(table)
    if as_json:
        render.emit_json(render.ckpt_shared_json(table, groups, unique, by_path))
    else:
        render.emit(render.ckpt_shared_lines(table, groups, unique, by_path))


def validate(model: str) -> None:
    """Every header, index, metadata and shard of the checkpoint, checked (SpecError on the first problem)."""
    session.open_checkpoint(model)
