"""A checkpoint's records, and diff's, → text and JSON."""

from __future__ import annotations

from typing import Any

from netinspect.units import human_bytes

from .model import label_tail, param_row_json, shared_doc, shared_table, totals_json, tree_json, tree_lines
from .text import Line, fnum, n, other_paths, shape, table

# --- checkpoints --------------------------------------------------------------------------------


def _ckpt_label(node: Any) -> str:
    """``(0): weight [8, 4], bias [8] float32  · 40 params``: a key prefix and its own tensors."""
    text = f"({node.name})" + (f": {node.args}" if node.args else "")
    return text + label_tail(node, [f"stored once: {t}" for t in node.tied])


def ckpt_tree_lines(src: Any, root: Any, depth: int | None, expand: bool) -> list[Line]:
    """The hierarchy of a checkpoint's dotted keys (runs of 3+ identical siblings folded)."""
    stored = len({e.stored for e in src.entries})
    title = f"{src.name} · {src.format} · {n(root.params_total)} params in {n(stored)} tensors"
    if root.args:
        title += f" · top level: {root.args}"
    return tree_lines(None, root, depth, expand, title=title, label=_ckpt_label)


def ckpt_tree_json(src: Any, root: Any) -> dict[str, Any]:
    return {"model": src.name, "format": src.format, "device": None, "root": tree_json(root)}


def ckpt_params_json(src: Any, rows: list[Any], totals: Any) -> dict[str, Any]:
    """SPEC §3 params for a checkpoint: what the file does not say (requires_grad, device, grad) is null."""
    return {
        "model": src.name,
        "format": src.format,
        "device": None,
        "parameters": [param_row_json(r) for r in rows],
        "totals": {**totals_json(totals), "tensors": totals.tensors},
    }


def ckpt_params_lines(src: Any, rows: list[Any], totals: Any, module: str | None) -> list[Line]:
    headers = ("name", "shape", "dtype", "numel", "shared with")
    body = [(r.name, shape(r.shape), r.dtype, n(r.numel), other_paths(r.paths, r.name)) for r in rows]
    out: list[Line] = [(f"{src.name} · {src.format}" + (f" · under {module}" if module else ""), "bold")]
    out += table(headers, body, right={3})
    out.append(("", ""))
    again = totals.by_path - totals.unique
    out.append(
        (
            f"parameters: {n(totals.unique)} unique (each stored tensor once) · {n(totals.by_path)} by key"
            + (f" ({n(again)} under a second name)" if again else ""),
            "bold",
        )
    )
    size = f"{human_bytes(totals.bytes)} ({n(totals.bytes)} bytes)"
    out.append((f"tensors: {n(totals.tensors)} stored under {n(len(rows))} keys · {size}", ""))
    return out


def ckpt_state_json(src: Any, entries: list[Any], with_values: bool) -> dict[str, Any]:
    """SPEC §3 state-dict for a checkpoint (complex values as [real, imaginary] pairs)."""
    out = []
    for e in entries:
        item: dict[str, Any] = {"key": e.key, "shape": e.shape, "dtype": e.dtype, "device": e.device, "kind": e.kind, "numel": e.numel}
        if with_values:
            import torch

            t = e.tensor.detach().cpu()
            item["values"] = (torch.view_as_real(t) if t.is_complex() else t).tolist()
        out.append(item)
    return {"model": src.name, "format": src.format, "device": None, "entries": out}


def ckpt_state_lines(src: Any, entries: list[Any], with_values: bool, single: bool) -> list[Line]:
    if single:
        return [(str(entries[0].tensor), "")]
    out: list[Line] = [(f"{src.name} · {src.format}", "bold")]
    if not with_values:
        out += table(("key", "shape", "dtype", "numel"), [(e.key, shape(e.shape), e.dtype, n(e.numel)) for e in entries], right={3})
    else:
        for e in entries:
            out.append((f"{e.key}  {shape(e.shape)}  {e.dtype}", "bold"))
            out.append((str(e.tensor), ""))
    out.append(("", ""))
    out.append((f"{len(entries)} entries (a tensor stored under several names appears under each)", "dim"))
    return out


def ckpt_shared_json(src: Any, groups: list[Any], unique: int, by_path: int) -> dict[str, Any]:
    return shared_doc({"model": src.name, "format": src.format}, groups, unique, by_path)


def ckpt_shared_lines(src: Any, groups: list[Any], unique: int, by_path: int) -> list[Line]:
    title = f"{src.name} · {src.format}"
    return shared_table(
        title, groups, unique, by_path, none="no tensor is stored under two names", what="keys (one stored tensor)", by="key"
    )


# --- diff ---------------------------------------------------------------------------------------

#: Rows of each kind (only in a, only in b, changed) the text output shows; --json lists them all.
DIFF_ROWS = 20


def diff_json(d: Any) -> dict[str, Any]:
    """SPEC §3 diff (``max_abs_diff`` only with --values)."""

    def side(e: Any) -> dict[str, Any]:
        return {"shape": list(e.shape), "dtype": e.dtype}

    changed = []
    for c in d.changed:
        item: dict[str, Any] = {"key": c.key, "a": side(c.a), "b": side(c.b)}
        if d.values:
            item["max_abs_diff"] = c.max_abs_diff
        changed.append(item)
    return {
        "a": d.a,
        "b": d.b,
        "a_format": d.a_format,
        "b_format": d.b_format,
        "only_a": [e.key for e in d.only_a],
        "only_b": [e.key for e in d.only_b],
        "changed": changed,
        "same": d.same,
        "equal": d.equal,
        "hints": d.hints,
    }


def _tensor_text(e: Any) -> str:
    return f"{shape(e.shape)} {e.dtype}"


def diff_lines(d: Any) -> list[Line]:
    """``-`` a key only in a, ``+`` only in b, ``~`` changed; counts, the verdict, then hints."""
    out: list[Line] = [(f"a: {d.a} ({d.a_format}) · b: {d.b} ({d.b_format})", "bold")]
    rows: list[tuple[str, ...]] = []
    more: list[str] = []
    for mark, items, what in (("-", d.only_a, "only in a"), ("+", d.only_b, "only in b"), ("~", d.changed, "changed")):
        for item in items[:DIFF_ROWS]:
            if mark == "-":
                rows.append((mark, item.key, _tensor_text(item), ""))
            elif mark == "+":
                rows.append((mark, item.key, "", _tensor_text(item)))
            else:
                row = (mark, item.key, _tensor_text(item.a), _tensor_text(item.b))
                rows.append((*row, fnum(item.max_abs_diff)) if d.values else row)
        if len(items) > DIFF_ROWS:
            more.append(f"{n(len(items) - DIFF_ROWS)} more {what}")
    if rows:
        headers = ("", "key", "a", "b", "max |a - b|") if d.values else ("", "key", "a", "b")
        out += table(headers, [r + ("",) * (len(headers) - len(r)) for r in rows], right={4})
        if more:
            out.append(("… and " + ", ".join(more) + " (--json lists every key)", "dim"))
        out.append(("", ""))
    what = "shapes, dtypes and values" + (f" (atol {d.atol:g})" if d.atol else "") if d.values else "shapes and dtypes"
    counts = f"{n(len(d.only_a))} only in a · {n(len(d.only_b))} only in b · {n(len(d.changed))} changed · {n(d.same)} the same"
    out.append((f"{counts}: equal ({what})" if d.equal else f"{counts}: different", "bold"))
    out.extend((f"hint: {h}", "") for h in d.hints)
    return out
