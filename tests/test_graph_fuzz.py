"""Random graph modules against plain torch: hypothesis writes a model file with a written forward
and, beside it, the hand-written module it stands for (children built in the same order, the same
ops run by plain Python); both must agree on print(model), state_dict values and forward output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_graphs import assert_same
from torch import nn

from netinspect.session import BuildOptions, make

LEAVES = {
    "Linear": lambda d: nn.Linear(d, d),
    "ReLU": lambda d: nn.ReLU(),
    "Tanh": lambda d: nn.Tanh(),
    "LayerNorm": lambda d: nn.LayerNorm(d),
    "Dropout": lambda d: nn.Dropout(0.3),
}
YAML = {"Linear": "Linear({d}, {d})", "ReLU": "ReLU", "Tanh": "Tanh", "LayerNorm": "LayerNorm({d})", "Dropout": "Dropout(0.3)"}


@dataclass(frozen=True)
class Child:
    name: str
    kinds: tuple[str, ...]  # one leaf, or a Sequential of several
    frozen: bool
    present: bool  # its if: holds


# (op, operands): operands index earlier values (0 is the input); "child" names a child by index
Op = tuple[str, tuple[int, ...], int]


@st.composite
def models(draw: st.DrawFn) -> tuple[int, list[Child], bool, list[Op], bool]:
    d = draw(st.integers(2, 5))
    n = draw(st.integers(1, 4))
    children = [
        Child(
            f"c{i}",
            tuple(draw(st.lists(st.sampled_from(sorted(LEAVES)), min_size=1, max_size=3))),
            draw(st.booleans()) and draw(st.booleans()),
            draw(st.integers(0, 5)) > 0,
        )
        for i in range(n)
    ]
    scale = draw(st.booleans())
    ops: list[Op] = []
    for i in range(draw(st.integers(1, 6))):
        have = i + 1  # values so far: the input and each op's result
        kind = draw(st.sampled_from(["child", "child", "add", "mul", "tanh", "relu", "cat", "neg", "scale", "view"]))
        a = draw(st.integers(0, have - 1))
        b = draw(st.integers(0, have - 1))
        c = draw(st.integers(0, n - 1))
        if kind == "child" and not children[c].present:
            kind = "add"
        if kind == "scale" and not scale:
            kind = "mul"
        ops.append((kind, (a, b), c))
    ties = draw(st.booleans())
    return d, children, scale, ops, ties


def _tieable(children: list[Child]) -> tuple[Child, Child] | None:
    linears = [c for c in children if c.present and c.kinds == ("Linear",)]
    return (linears[0], linears[1]) if len(linears) >= 2 else None


def model_file(d: int, children: list[Child], scale: bool, ops: list[Op], ties: bool) -> str:
    lines = ["netinspect: 1", f"input: [3, {d}]", "model:", "  class: Net", "  modules:"]
    for c in children:
        mods = (", frozen: true" if c.frozen else "") + ("" if c.present else ", if: false")
        if len(c.kinds) == 1:
            args = {"Linear": [d, d], "LayerNorm": [d], "Dropout": [0.3]}.get(c.kinds[0], [])
            node = f"{{type: {c.kinds[0]}, args: {args}{mods}}}"
        else:
            items = ", ".join(f"'{YAML[k].format(d=d)}'" for k in c.kinds)
            node = f"{{sequential: [{items}]{mods}}}"
        lines.append(f"    {c.name}: {node}")
    if scale:
        lines.append(f"    scale: {{param: [{d}], init: 'normal(std=0.5)'}}")
    lines.append("  forward: |")
    for i, (kind, (a, b), c) in enumerate(ops, start=1):
        va, vb = (f"v{a}" if a else "x"), (f"v{b}" if b else "x")
        expr = {
            "child": f"{children[c].name}({va})",
            "add": f"{va} + {vb}",
            "mul": f"{va} * {vb}",
            "tanh": f"torch.tanh({va})",
            "relu": f"F.relu({va})",
            "cat": f"torch.cat([{va}, {vb}], -1)[:, :{d}]",
            "neg": f"-{va}",
            "scale": f"{va} * scale",
            "view": f"{va}.view(-1, {d}).transpose(0, 1).transpose(0, 1)",
        }[kind]
        lines.append(f"    v{i} = {expr}")
    lines.append(f"    return v{len(ops)}")
    pair = _tieable(children) if ties else None
    if pair is not None:
        lines += ["tie:", f"  - {{param: {pair[1].name}.weight, to: {pair[0].name}.weight}}"]
    return "\n".join(lines) + "\n"


def reference(d: int, children: list[Child], scale: bool, ops: list[Op], ties: bool) -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for c in children:
                if not c.present:
                    continue
                m = LEAVES[c.kinds[0]](d) if len(c.kinds) == 1 else nn.Sequential(*(LEAVES[k](d) for k in c.kinds))
                setattr(self, c.name, m)
            if scale:
                self.scale = nn.Parameter(torch.empty(d))
                nn.init.normal_(self.scale, std=0.5)
            pair = _tieable(children) if ties else None
            if pair is not None:
                getattr(self, pair[1].name).weight = getattr(self, pair[0].name).weight
            for c in children:
                if c.present and c.frozen:
                    getattr(self, c.name).requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values = [x]
            for kind, (a, b), c in ops:
                va, vb = values[a], values[b]
                if kind == "child":
                    out = getattr(self, children[c].name)(va)
                elif kind == "add":
                    out = va + vb
                elif kind == "mul":
                    out = va * vb
                elif kind == "tanh":
                    out = torch.tanh(va)
                elif kind == "relu":
                    out = F.relu(va)
                elif kind == "cat":
                    out = torch.cat([va, vb], -1)[:, :d]
                elif kind == "neg":
                    out = -va
                elif kind == "scale":
                    out = va * self.scale
                else:
                    out = va.view(-1, d).transpose(0, 1).transpose(0, 1)
                values.append(out)
            return values[-1]

    return Net()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(model=models(), seed=st.integers(0, 2**16))
def test_random_graph_models_match_plain_torch(model: tuple[int, list[Child], bool, list[Op], bool], seed: int, tmp_path: Path) -> None:
    text = model_file(*model)
    path = tmp_path / "g.yaml"
    path.write_text(text, encoding="utf-8")
    mine = make(str(path), BuildOptions(seed=seed)).built.module
    torch.manual_seed(seed)
    ref = reference(*model)
    assert_same(mine, ref, torch.rand(3, model[0]), seed=seed + 1)
