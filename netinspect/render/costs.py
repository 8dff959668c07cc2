"""The costs of a model (``netinspect summary``, ``params --shard``) as text or JSON.

Plain functions from records to lines or documents; the table, number formats and output go
through ``render``, the only module that draws (or imports rich).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netinspect.records import walk_tree
from netinspect.units import human_bytes

from .text import Line, fold_runs, n, shape, shape_text, table

_PRECISION_TEXT = {
    "fp32": "fp32",
    "bf16-mixed": "bf16-mixed: fp32 weights, gradients and states; autocast to bfloat16",
    "fp16-mixed": "fp16-mixed: fp32 weights, gradients and states; autocast to float16",
}


def si(x: int, unit: str = "") -> str:
    """``3.63 G`` (three significant digits, decimal prefixes); exact below 1,000."""
    value = float(x)
    for prefix in ("", "K", "M", "G", "T", "P", "E"):
        if abs(value) < 1000 or prefix == "E":
            if prefix == "":
                return f"{x:,}{' ' + unit if unit else ''}"
            digits = f"{value:.3g}" if abs(value) >= 1 else f"{value:.2f}"
            if "e" in digits:
                digits = f"{value:.0f}"
            return f"{digits} {prefix}{unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _exact(x: int) -> str:
    """``6.82 M (6,815,744)``, or just ``160`` below a thousand."""
    return n(x) if x < 1000 else f"{si(x)} ({n(x)})"


# --- summary ------------------------------------------------------------------------------------


def _memory_json(m: Any) -> dict[str, Any]:
    return {
        "parameters": m.parameters,
        "gradients": m.gradients,
        "optimizer": m.optimizer,
        "activations": m.activations,
        "total": m.total,
        "buffers": m.buffers,
        "outputs": m.outputs,
        "workspace": m.workspace,
    }


def summary_json(
    model: str,
    device: str,
    input_shapes: list[list[int]],
    root: Any,
    costs: Any,
    estimate: Any,
    precision: str | None,
) -> dict[str, Any]:
    """SPEC §3 ``summary``; every module path in ``named_modules(remove_duplicate=False)`` order."""
    modules = []
    for r in walk_tree(root):
        c = r.cost
        modules.append(
            {
                "path": r.path,
                "type": r.type,
                "output_shape": None if c is None else c.output_shape,
                "params": r.params,
                "flops": 0 if c is None else c.flops,
                "output_bytes": 0 if c is None else c.output_bytes,
                "flops_backward": 0 if c is None else c.flops_backward,
                "calls": 0 if c is None else c.calls,
            }
        )
    memory = _memory_json(estimate.whole)
    memory["per_rank"] = None if estimate.per_rank is None else {"world": estimate.shard, **_memory_json(estimate.per_rank)}
    return {
        "model": model,
        "device": device,
        "input_shape": input_shapes[0] if len(input_shapes) == 1 else input_shapes,
        "optimizer": estimate.optimizer,
        "precision": precision,
        "modules": modules,
        "totals": {
            "params": root.params,
            "param_bytes": estimate.whole.parameters,
            "flops_forward": costs.flops_forward,
            "flops_backward": costs.flops_backward,
            "saved_activation_bytes": costs.saved_bytes,
            "memory": memory,
        },
    }


def _figures(r: Any) -> list[str]:
    c = r.cost
    if c is None:
        return ["-", n(r.params) if r.params else "-", "-", "-", "-"]
    calls = f" ×{c.calls} calls" if c.calls > 1 else ""
    return [
        shape_text(c.output_shape) + calls,
        n(r.params) if r.params else "-",
        si(c.flops),
        si(c.flops_backward),
        human_bytes(c.output_bytes),
    ]


def summary_table(root: Any, depth: int | None, expand: bool) -> list[Line]:
    """The module table in tree order: runs of three or more identical siblings folded (as
    ``tree`` folds them) unless ``expand``; ``depth`` levels below the root."""
    rows: list[list[str]] = [["(root) " + root.type, *_figures(root)]]

    def walk(row: Any, prefix: str, level: int) -> None:
        if depth is not None and level >= depth:
            return
        items = fold_runs(row.children, expand, lambda c: not c.shared)
        for k, group in enumerate(items):
            count = len(group)
            last = k == len(items) - 1
            branch = "└── " if last else "├── "
            ext = "    " if last else "│   "
            first = group[0]
            if count > 1:
                label = f"({first.name} … {group[-1].name}) ×{count} {first.type}, each"
            else:
                label = f"{first.name}: {first.type}"
            rows.append([prefix + branch + label, *_figures(first)])
            walk(first, prefix + ext, level + 1)

    walk(root, "", 0)
    return table(("module", "output shape", "params", "FLOPs", "backward", "output"), rows, right={2, 3, 4, 5})


def summary_lines(
    model: str,
    device: str,
    input_shapes: Sequence[Sequence[int]],
    root: Any,
    costs: Any,
    estimate: Any,
    precision: str | None,
    depth: int | None,
    expand: bool,
    dtype: str,
) -> list[Line]:
    ins = ", ".join(shape(s) for s in input_shapes)
    out: list[Line] = [(f"{model} · input {ins} · {device} · training mode", "bold")]
    out += summary_table(root, depth, expand)
    out.append(("", ""))
    f, b = costs.flops_forward, costs.flops_backward
    out.append((f"parameters: {n(root.params)} (each Parameter once) · {human_bytes(estimate.whole.parameters)}", "bold"))
    ratio = f" ({b / f:.2f}× forward)" if f else ""
    out.append((f"FLOPs: forward {_exact(f)} · backward {_exact(b)}{ratio}", "bold"))
    out.append((f"saved for backward: {human_bytes(costs.saved_bytes)} ({n(costs.saved_bytes)} bytes, each storage once)", ""))
    out.append(("", ""))
    out += memory_lines(estimate, precision, dtype)
    return out


def memory_lines(estimate: Any, precision: str | None, dtype: str) -> list[Line]:
    """The training-memory estimate: whole model, and per rank with ``--shard``."""
    w = estimate.whole
    r = estimate.per_rank
    how = _PRECISION_TEXT[precision] if precision is not None else f"{dtype} (the model's dtype)"
    headers = ["", "whole model"] + ([f"per rank (--shard {estimate.shard})"] if r is not None else [])
    items = [
        ("parameters", "parameters"),
        ("buffers", "buffers"),
        ("gradients", "gradients"),
        ("optimizer states", "optimizer"),
        ("saved activations", "activations"),
        ("outputs (not saved)", "outputs"),
        ("optimizer step workspace", "workspace"),
        ("total (peak)", "total"),
    ]
    rows = [[label, human_bytes(getattr(w, attr))] + ([human_bytes(getattr(r, attr))] if r is not None else []) for label, attr in items]
    out: list[Line] = [(f"training step memory · optimizer {estimate.optimizer} · {how}", "bold")]
    out += table(headers, rows, right={1, 2})
    step = "all at once (foreach, as torch.optim runs on CUDA)" if estimate.foreach else "one parameter at a time (as on CPU)"
    out.append(("total = parameters + buffers + gradients + optimizer states + max(saved activations + outputs, step workspace)", "dim"))
    if w.workspace:
        out.append((f"step workspace: the optimizer's temporaries, {step}", "dim"))
    return out


# --- params --shard -----------------------------------------------------------------------------


def shard_json(world: int, rows: list[Any]) -> dict[str, Any]:
    return {
        "world": world,
        "per_rank_bytes": sum(x.per_rank_bytes for x in rows),
        "parameters": [
            {"name": x.name, "shape": x.shape, "per_rank_shape": x.per_rank_shape, "per_rank_bytes": x.per_rank_bytes, "ranks": x.ranks}
            for x in rows
        ],
    }


def shard_lines(world: int, rows: list[Any]) -> list[Line]:
    body = [
        (
            x.name,
            shape(x.shape),
            shape(x.per_rank_shape),
            n(x.per_rank_bytes),
            " ".join(str(b - a) for a, b in x.ranks) if world <= 8 else "",
        )
        for x in rows
    ]
    total = sum(x.per_rank_bytes for x in rows)
    whole = sum(x.bytes for x in rows)
    out: list[Line] = [("", ""), (f"fully_shard over {world} ranks (dim-0 chunks, padded to equal size)", "bold")]
    out += table(("name", "shape", "per rank", "bytes per rank", "rows each rank keeps" if world <= 8 else ""), body, right={3})
    out.append(("", ""))
    out.append((f"per rank: {human_bytes(total)} ({n(total)} bytes) of {human_bytes(whole)} in all", "bold"))
    return out
