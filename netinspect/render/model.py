"""A built model's records → text and JSON: tree, params, state_dict, shared, init, forward."""

from __future__ import annotations

from typing import Any

from netinspect.units import human_bytes

from .text import Line, fnum, fold_runs, joined_paths, n, other_paths, shape, shape_text, some_paths, table

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
        marks.append("shared: also at " + other_paths(node.paths, node.path))
    marks.extend(f"tied: {t}" for t in node.tied)
    if node.frozen:
        marks.append("frozen")
    return text + label_tail(node, marks)


def label_tail(node: Any, marks: list[str]) -> str:
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

    def walk(node: Any, prefix: str, level: int) -> None:
        items = fold_runs(node.children, expand, lambda c: len(c.paths) == 1)
        if depth is not None and level >= depth:
            if node.children:
                out.append((f"{prefix}└── … {len(node.children)} children", "dim"))
            return
        for k, group in enumerate(items):
            last = k == len(items) - 1
            branch = "└── " if last else "├── "
            ext = "    " if last else "│   "
            count = len(group)
            if count > 1:
                first, final = group[0], group[-1]
                each = f", {n(first.params_total)} params each" if first.params_total else ""
                kind = f" {first.type}" if first.type != "-" else ""
                out.append((f"{prefix}{branch}({first.name} … {final.name}): ×{count} identical{kind}{each}", ""))
                if first.children:
                    out.append((f"{prefix}{ext}│ each is:", "dim"))
                    walk(first, prefix + ext, level + 1)
            else:
                out.append((prefix + branch + label(group[0]), ""))
                walk(group[0], prefix + ext, level + 1)

    walk(root, "", 0)
    return out


# --- params -------------------------------------------------------------------------------------


def params_json(built: Any, rows: list[Any], totals: Any) -> dict[str, Any]:
    return {
        "model": built.spec.name,
        "device": str(built.device),
        "parameters": [param_row_json(r) for r in rows],
        "totals": totals_json(totals),
    }


def param_row_json(r: Any) -> dict[str, Any]:
    """SPEC §3's parameter row (a checkpoint gives None where the file does not say)."""
    return {
        "name": r.name,
        "shape": r.shape,
        "dtype": r.dtype,
        "device": r.device,
        "requires_grad": r.requires_grad,
        "numel": r.numel,
        "grad": r.grad,
        "shared_with": r.shared_with,
    }


def totals_json(totals: Any) -> dict[str, Any]:
    return {
        "unique": totals.unique,
        "by_path": totals.by_path,
        "trainable": totals.trainable,
        "frozen": totals.frozen,
        "bytes": totals.bytes,
        "buffers": totals.buffers,
        "buffer_bytes": totals.buffer_bytes,
    }


def params_lines(built: Any, rows: list[Any], totals: Any, module: str | None) -> list[Line]:
    headers = ("name", "shape", "dtype", "device", "requires_grad", "numel", "grad", "shared with")
    body = [
        (r.name, shape(r.shape), r.dtype, r.device, str(r.requires_grad), n(r.numel), r.grad, other_paths(r.paths, r.name)) for r in rows
    ]
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
    from netinspect.queries import values

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
    return shared_doc({"model": built.spec.name}, groups, unique, by_path)


def shared_lines(built: Any, groups: list[Any], unique: int, by_path: int) -> list[Line]:
    return shared_table(
        built.spec.name,
        groups,
        unique,
        by_path,
        none="no parameter is shared: every path is its own Parameter",
        what="paths (one Parameter)",
        by="path",
    )


def shared_doc(head: dict[str, Any], groups: list[Any], unique: int, by_path: int) -> dict[str, Any]:
    """``shared --json`` of a model or a checkpoint: ``head`` (what it is), the groups, the totals."""
    return {
        **head,
        "groups": [{"paths": g.paths, "shape": g.shape, "numel": g.numel, "cause": g.cause, "modules": g.modules} for g in groups],
        "totals": {"unique": unique, "by_path": by_path},
    }


def shared_table(title: str, groups: list[Any], unique: int, by_path: int, *, none: str, what: str, by: str) -> list[Line]:
    """``shared`` of a model or a checkpoint: the groups (``what`` heads their column; ``none`` when
    there are none), then the totals counted once and ``by`` each path or key."""
    out: list[Line] = [(title, "bold")]
    if not groups:
        out.append((none, ""))
    else:
        rows = [(joined_paths(g.paths), shape(g.shape), n(g.numel), g.cause) for g in groups]
        out += table((what, "shape", "numel", "cause"), rows, right={2})
    out.append(("", ""))
    out.append(
        (
            f"parameters: {n(unique)} unique · {n(by_path)} by {by}"
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
            r.name + (" (= " + some_paths(r.shared_with, len(r.shared_with)) + ")" if r.shared_with else ""),
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


#: ``forward --json`` leaves out the output's values past this many (``--values`` shows them all).
OUTPUT_VALUES_LIMIT = 65_536


def forward_json(built: Any, result: Any, all_values: bool = False) -> dict[str, Any]:
    from netinspect.queries import values

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
        row = [where if m.line is None else f"{where}:{m.line}", m.type, shape_text(m.output_shape)]
        rows.append(row + [m.code or ""] if steps else row)
    out += table(("module", "type", "output shape", "forward line")[: 4 if steps else 3], rows)
    out.append(("", ""))
    if str(built.device) == "meta":
        out.append((f"output shape: {shape_text(result.output_shape)} (meta device: shapes only)", "bold"))
    else:
        out.append(("output:", "bold"))
        out.append((str(result.output), ""))
    return out
