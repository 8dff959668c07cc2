"""Records → text for people (rich styling on a terminal, plain text otherwise) or JSON for scripts.

The only module that imports rich. Nothing here builds a model.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from .units import human_bytes

Line = tuple[str, str]  # (text, rich style or "")


def emit(lines: Iterable[str | Line], *, file: Any = None) -> None:
    """Write lines: styled through rich on a terminal, as plain text (fast, stable) otherwise."""
    out = file or sys.stdout
    items = [(x, "") if isinstance(x, str) else x for x in lines]
    if out.isatty():
        from rich.console import Console
        from rich.text import Text

        console = Console(file=out, highlight=False, soft_wrap=True)
        for text, style in items:
            console.print(Text(text, style=style or ""))
        return
    out.write("".join(text + "\n" for text, _ in items))


def emit_json(doc: Any) -> None:
    """One JSON document on stdout; NaN and infinities (not JSON) become null."""
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_clean(doc), ensure_ascii=False)
    sys.stdout.write(text + "\n")


def _clean(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] | None = None) -> list[Line]:
    """A plain aligned table: a bold header, a rule, then the rows."""
    right = right or set()
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)

    def fmt(row: Sequence[str]) -> str:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    out: list[Line] = [(fmt(headers), "bold"), ("  ".join("─" * w for w in widths), "dim")]
    out.extend((fmt(r), "") for r in rows)
    return out


def n(x: int) -> str:
    return f"{x:,}"


def shape(s: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]"


def fnum(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.4g}"


# --- tree ---------------------------------------------------------------------------------------


def tree_json(node: Any) -> dict[str, Any]:
    """SPEC §3 tree NODE, recursively (never collapsed)."""
    return {
        "name": node.name,
        "path": node.path,
        "type": node.type,
        "args": node.args,
        "params_own": node.params_own,
        "params_total": node.params_total,
        "shared_with": node.shared_paths,
        "tied": node.tied,
        "frozen": node.frozen,
        "children": [tree_json(c) for c in node.children],
    }


def _label(node: Any) -> str:
    head = f"({node.name}): " if node.name else ""
    text = f"{head}{node.type}({node.args})" if node.args or not node.children else f"{head}{node.type}"
    marks = []
    if len(node.paths) > 1:
        marks.append("shared: also at " + _others(node.paths, node.path))
    marks.extend(f"tied: {t}" for t in node.tied)
    if node.frozen:
        marks.append("frozen")
    return text + _tail(node, marks)


def _tail(node: Any, marks: list[str]) -> str:
    """``  · 40 params`` (or ``8 own, 48 params in all``) and the ``  [marks]``."""
    counts = ""
    if node.children:
        if node.params_total:
            counts = f"{n(node.params_total)} params"
            if node.params_own:
                counts = f"{n(node.params_own)} own, {counts} in all"
    elif node.params_own:
        counts = f"{n(node.params_own)} params"
    tail = "  · " + counts if counts else ""
    return tail + "".join(f"  [{m}]" for m in marks)


def tree_lines(built: Any, root: Any, depth: int | None, expand: bool, *, title: str | None = None, label: Any = None) -> list[Line]:
    """The module tree, with runs of 3+ identical siblings collapsed unless ``expand`` (``title`` and
    ``label`` replace a built model's first line and node labels: a checkpoint's tree)."""
    label = label or _label
    if title is None:
        title = f"{built.spec.name} · {built.device} · {root.type}  · {n(root.params_total)} params"
    out: list[Line] = [(title, "bold")]

    def runs(children: list[Any]) -> list[tuple[Any, int]]:
        if expand:
            return [(c, 1) for c in children]
        out_runs: list[tuple[Any, int]] = []
        i = 0
        while i < len(children):
            j = i + 1
            c = children[i]
            while j < len(children) and len(c.paths) == 1 and len(children[j].paths) == 1 and children[j].signature == c.signature:
                j += 1
            if j - i >= 3:
                out_runs.append((children[i:j], j - i))
            else:
                out_runs.extend((x, 1) for x in children[i:j])
            i = j
        return out_runs

    def walk(node: Any, prefix: str, level: int) -> None:
        items = runs(node.children)
        if depth is not None and level >= depth:
            if node.children:
                out.append((f"{prefix}└── … {len(node.children)} children", "dim"))
            return
        for k, (item, count) in enumerate(items):
            last = k == len(items) - 1
            branch = "└── " if last else "├── "
            ext = "    " if last else "│   "
            if count > 1:
                first, final = item[0], item[-1]
                each = f", {n(first.params_total)} params each" if first.params_total else ""
                kind = f" {first.type}" if first.type != "-" else ""
                out.append((f"{prefix}{branch}({first.name} … {final.name}): ×{count} identical{kind}{each}", ""))
                if first.children:
                    out.append((f"{prefix}{ext}│ each is:", "dim"))
                    walk(first, prefix + ext, level + 1)
            else:
                out.append((prefix + branch + label(item), ""))
                walk(item, prefix + ext, level + 1)

    walk(root, "", 0)
    return out


#: A group of more paths than this shows its first and last ones (``--json`` lists every path).
SHOWN_PATHS = 4


def _some(paths: Iterable[str], count: int) -> str:
    """``a, b, c`` or, past SHOWN_PATHS of the ``count`` paths, ``a, b, c and 1,997 more``
    (``--json`` lists every path). Reads only the paths it shows."""
    shown = list(itertools.islice(paths, count if count <= SHOWN_PATHS else SHOWN_PATHS - 1))
    more = count - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more else "")


def _others(paths: list[str], me: str) -> str:
    """``_some`` of the paths other than ``me``, without building that list (a Parameter reused N
    times has N rows: N lists of N - 1 paths would be quadratic)."""
    return _some((p for p in paths if p != me), len(paths) - 1)


def _joined_paths(paths: list[str]) -> str:
    if len(paths) <= SHOWN_PATHS:
        return " = ".join(paths)
    return " = ".join([*paths[: SHOWN_PATHS - 1], "…", paths[-1]]) + f"  ({len(paths):,} paths)"


# --- params -------------------------------------------------------------------------------------


def params_json(built: Any, rows: list[Any], totals: Any) -> dict[str, Any]:
    return {
        "model": built.spec.name,
        "device": str(built.device),
        "parameters": [
            {
                "name": r.name,
                "shape": r.shape,
                "dtype": r.dtype,
                "device": r.device,
                "requires_grad": r.requires_grad,
                "numel": r.numel,
                "grad": r.grad,
                "shared_with": r.shared_with,
            }
            for r in rows
        ],
        "totals": {
            "unique": totals.unique,
            "by_path": totals.by_path,
            "trainable": totals.trainable,
            "frozen": totals.frozen,
            "bytes": totals.bytes,
            "buffers": totals.buffers,
            "buffer_bytes": totals.buffer_bytes,
        },
    }


def params_lines(built: Any, rows: list[Any], totals: Any, module: str | None) -> list[Line]:
    headers = ("name", "shape", "dtype", "device", "requires_grad", "numel", "grad", "shared with")
    body = [(r.name, shape(r.shape), r.dtype, r.device, str(r.requires_grad), n(r.numel), r.grad, _others(r.paths, r.name)) for r in rows]
    title = built.spec.name + (f" · module {module}" if module else "")
    out: list[Line] = [(title, "bold")]
    out += table(headers, body, right={5})
    out.append(("", ""))
    out += totals_lines(totals)
    return out


def totals_lines(totals: Any) -> list[Line]:
    shared = totals.by_path - totals.unique
    lines: list[Line] = [
        (
            f"parameters: {n(totals.unique)} unique (each Parameter once) · {n(totals.by_path)} by path"
            + (f" ({n(shared)} shared)" if shared else ""),
            "bold",
        ),
        (f"trainable: {n(totals.trainable)} · frozen: {n(totals.frozen)} · {human_bytes(totals.bytes)} ({n(totals.bytes)} bytes)", ""),
        (f"buffers (not counted above): {n(totals.buffers)} values · {human_bytes(totals.buffer_bytes)}", "dim"),
    ]
    return lines


# --- state_dict ---------------------------------------------------------------------------------


def state_json(built: Any, entries: list[Any], with_values: bool) -> dict[str, Any]:
    from .queries import values

    out = []
    for e in entries:
        item: dict[str, Any] = {"key": e.key, "shape": e.shape, "dtype": e.dtype, "device": e.device, "kind": e.kind}
        if with_values:
            item["values"] = values(e.tensor)
        out.append(item)
    return {"model": built.spec.name, "device": str(built.device), "entries": out}


def state_lines(built: Any, entries: list[Any], with_values: bool, single: bool) -> list[Line]:
    if single:
        return [(str(entries[0].tensor.detach()), "")]
    headers = ("key", "shape", "dtype", "device", "kind")
    out: list[Line] = [(built.spec.name, "bold")]
    if not with_values:
        out += table(headers, [(e.key, shape(e.shape), e.dtype, e.device, e.kind) for e in entries])
    else:
        for e in entries:
            out.append((f"{e.key}  {shape(e.shape)}  {e.dtype}  {e.kind}", "bold"))
            out.append((str(e.tensor.detach()), ""))
    params = sum(1 for e in entries if e.kind == "parameter")
    out.append(("", ""))
    out.append(
        (f"{len(entries)} entries: {params} parameters, {len(entries) - params} buffers (tied parameters appear under each key)", "dim")
    )
    return out


# --- shared -------------------------------------------------------------------------------------


def shared_json(built: Any, groups: list[Any], unique: int, by_path: int) -> dict[str, Any]:
    return {
        "model": built.spec.name,
        "groups": [{"paths": g.paths, "shape": g.shape, "numel": g.numel, "cause": g.cause, "modules": g.modules} for g in groups],
        "totals": {"unique": unique, "by_path": by_path},
    }


def shared_lines(built: Any, groups: list[Any], unique: int, by_path: int) -> list[Line]:
    out: list[Line] = [(built.spec.name, "bold")]
    if not groups:
        out.append(("no parameter is shared: every path is its own Parameter", ""))
    else:
        rows = [(_joined_paths(g.paths), shape(g.shape), n(g.numel), g.cause) for g in groups]
        out += table(("paths (one Parameter)", "shape", "numel", "cause"), rows, right={2})
    out.append(("", ""))
    out.append(
        (
            f"parameters: {n(unique)} unique · {n(by_path)} by path"
            + (f" ({n(by_path - unique)} counted again by naive tools)" if by_path > unique else ""),
            "bold",
        )
    )
    return out


# --- init ---------------------------------------------------------------------------------------


def init_json(built: Any, rows: list[Any]) -> dict[str, Any]:
    return {
        "model": built.spec.name,
        "seed": built.seed,
        "parameters": [
            {
                "name": r.name,
                "shape": r.shape,
                "scheme": r.scheme,
                "mean": r.mean,
                "std": r.std,
                "min": r.min,
                "max": r.max,
                "zero_fraction": r.zero_fraction,
                "expected_std": r.expected_std,
                "shared_with": r.shared_with,
            }
            for r in rows
        ],
    }


def init_lines(built: Any, rows: list[Any], saved: Any) -> list[Line]:
    headers = ("name", "shape", "scheme", "mean", "std", "expected std", "min", "max", "zeros")
    body = [
        (
            r.name + (" (= " + _some(r.shared_with, len(r.shared_with)) + ")" if r.shared_with else ""),
            shape(r.shape),
            r.scheme or "(default)",
            fnum(r.mean),
            fnum(r.std),
            fnum(r.expected_std),
            fnum(r.min),
            fnum(r.max),
            f"{r.zero_fraction:.1%}",
        )
        for r in rows
    ]
    out: list[Line] = [(f"{built.spec.name} · seed {built.seed} · {built.device}", "bold")]
    out += table(headers, body, right={3, 4, 5, 6, 7, 8})
    if saved is not None:
        out.append(("", ""))
        out.append((f"saved the state_dict to {saved}", ""))
    return out


# --- forward ------------------------------------------------------------------------------------


def _shape_text(s: Any) -> str:
    if s is None:
        return "-"
    if isinstance(s, list) and all(isinstance(d, int) for d in s):
        return shape(s)
    if isinstance(s, list):
        return "(" + ", ".join(_shape_text(x) for x in s) + ")"
    return str(s)


#: ``forward --json`` leaves out the output's values past this many (``--values`` shows them all).
OUTPUT_VALUES_LIMIT = 65_536


def forward_json(built: Any, result: Any, all_values: bool = False) -> dict[str, Any]:
    from .queries import values

    meta = str(built.device) == "meta"
    out = result.output
    shown = not meta and (all_values or _numel(out) <= OUTPUT_VALUES_LIMIT)
    modules = [m for m in result.modules if m.line is None]
    steps = [m for m in result.modules if m.line is not None]
    return {
        "model": built.spec.name,
        "device": str(built.device),
        "input_shape": result.input_shapes[0] if len(result.input_shapes) == 1 else result.input_shapes,
        "output_shape": result.output_shape,
        "output": _values(out, values) if shown else None,
        "modules": [{"path": m.path, "type": m.type, "output_shape": m.output_shape} for m in modules],
        "steps": [
            {"module": m.path, "name": m.name, "op": m.type, "line": m.line, "code": m.code, "output_shape": m.output_shape} for m in steps
        ],
    }


def _numel(out: Any) -> int:
    if hasattr(out, "numel"):
        return int(out.numel())
    if isinstance(out, (tuple, list)):
        return sum(_numel(x) for x in out)
    return 0


def _values(out: Any, values: Any) -> Any:
    """A forward's output as JSON: a tensor's nested lists, a tuple's items in a list."""
    if hasattr(out, "detach"):
        return values(out)
    if isinstance(out, (tuple, list)):
        return [_values(x, values) for x in out]
    return out if isinstance(out, (int, float, bool, str)) or out is None else None


def forward_lines(built: Any, result: Any) -> list[Line]:
    ins = ", ".join(shape(s) for s in result.input_shapes)
    out: list[Line] = [(f"{built.spec.name} · input {ins} · {built.device}", "bold")]
    steps = any(m.line is not None for m in result.modules)  # a graph's steps: MODULE:LINE and the line
    rows = []
    for m in result.modules:
        where = m.path or "(root)"
        row = [where if m.line is None else f"{where}:{m.line}", m.type, _shape_text(m.output_shape)]
        rows.append(row + [m.code or ""] if steps else row)
    out += table(("module", "type", "output shape", "forward line")[: 4 if steps else 3], rows)
    out.append(("", ""))
    if str(built.device) == "meta":
        out.append((f"output shape: {_shape_text(result.output_shape)} (meta device: shapes only)", "bold"))
    else:
        out.append(("output:", "bold"))
        out.append((str(result.output), ""))
    return out


# --- checkpoints --------------------------------------------------------------------------------


def _ckpt_label(node: Any) -> str:
    """``(0): weight [8, 4], bias [8] float32  · 40 params``: a key prefix and its own tensors."""
    text = f"({node.name})" + (f": {node.args}" if node.args else "")
    return text + _tail(node, [f"stored once: {t}" for t in node.tied])


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
        "parameters": [
            {
                "name": r.name,
                "shape": r.shape,
                "dtype": r.dtype,
                "device": r.device,
                "requires_grad": r.requires_grad,
                "numel": r.numel,
                "grad": r.grad,
                "shared_with": r.shared_with,
            }
            for r in rows
        ],
        "totals": {
            "unique": totals.unique,
            "by_path": totals.by_path,
            "trainable": totals.trainable,
            "frozen": totals.frozen,
            "bytes": totals.bytes,
            "buffers": totals.buffers,
            "buffer_bytes": totals.buffer_bytes,
            "tensors": totals.tensors,
        },
    }


def ckpt_params_lines(src: Any, rows: list[Any], totals: Any, module: str | None) -> list[Line]:
    headers = ("name", "shape", "dtype", "numel", "shared with")
    body = [(r.name, shape(r.shape), r.dtype, n(r.numel), _others(r.paths, r.name)) for r in rows]
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
    return {
        "model": src.name,
        "format": src.format,
        "groups": [{"paths": g.paths, "shape": g.shape, "numel": g.numel, "cause": g.cause, "modules": g.modules} for g in groups],
        "totals": {"unique": unique, "by_path": by_path},
    }


def ckpt_shared_lines(src: Any, groups: list[Any], unique: int, by_path: int) -> list[Line]:
    out: list[Line] = [(f"{src.name} · {src.format}", "bold")]
    if not groups:
        out.append(("no tensor is stored under two names", ""))
    else:
        rows = [(_joined_paths(g.paths), shape(g.shape), n(g.numel), g.cause) for g in groups]
        out += table(("keys (one stored tensor)", "shape", "numel", "cause"), rows, right={2})
    out.append(("", ""))
    again = by_path - unique
    out.append(
        (
            f"parameters: {n(unique)} unique · {n(by_path)} by key" + (f" ({n(again)} counted again by naive tools)" if again else ""),
            "bold",
        )
    )
    return out


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
