"""Lazy modules (SPEC §1.3): the D2L "Lazy Initialization" cells, value for value.

Plain PyTorch: construct, draw X = torch.rand(input), call net(X) (the lazy modules take their
shapes and draw their values in call order), then any init. netinspect does the same for files
with input:, and forward uses that same X.
"""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import Cli, assert_state_equal, write
from torch import nn

from netinspect.session import BuildOptions, make

D2L_LAZY = "netinspect: 1\ninput: [2, 20]\nmodel: [LazyLinear(256), ReLU, LazyLinear(10)]\n"


def d2l_lazy(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """D2L: net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10)); X = torch.rand(2, 20); net(X)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))
    x = torch.rand(2, 20)
    return net, x, net(x)


def test_d2l_lazy_cells_value_for_value(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "lazy.yaml", D2L_LAZY)
    for seed in (0, 3):
        ref, _, out = d2l_lazy(seed)
        mine = make(str(path), BuildOptions(seed=seed)).built.module
        assert str(mine) == str(ref)  # the lazy modules became Linear(20, 256) and Linear(256, 10)
        assert_state_equal(mine.state_dict(), ref.state_dict())
        doc = cli.json("forward", path, "--seed", seed)
        assert torch.equal(torch.tensor(doc["output"]), out.detach())
    assert cli.run("state-dict", path, "--key", "2.bias").stdout.strip() == str(d2l_lazy()[0][2].bias.data)


def test_lazy_shapes_on_meta_and_rules_after_the_first_forward(tmp_path: Path, cli: Cli) -> None:
    path = write(
        tmp_path,
        "lazycnn.yaml",
        "netinspect: 1\ninput: [1, 3, 8, 8]\nmodel:\n  - LazyConv2d(4, 3, padding=1)\n  - LazyBatchNorm2d\n  - ReLU\n  - Dropout(0.5)\n"
        "  - Flatten\n  - LazyLinear(5)\ninit:\n  - {types: [Linear], weight: 'normal(std=0.01)', bias: zeros}\n",
    )
    doc = cli.json("params", path, "--device", "meta")
    assert [(p["name"], p["shape"]) for p in doc["parameters"]] == [
        ("0.weight", [4, 3, 3, 3]),
        ("0.bias", [4]),
        ("1.weight", [4]),
        ("1.bias", [4]),
        ("5.weight", [5, 256]),
        ("5.bias", [5]),
    ]
    torch.manual_seed(0)
    ref = nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(5))
    x = torch.rand(1, 3, 8, 8)
    ref(x)  # the first forward: BatchNorm's statistics move, Dropout draws, then LazyLinear draws
    with torch.no_grad():
        nn.init.normal_(ref[5].weight, std=0.01)
        nn.init.zeros_(ref[5].bias)
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    second = ref(x).detach()  # forward's pass: a second call on the same X (Dropout draws again)
    mine = make(str(path)).built.module
    assert str(mine) == str(ref)
    assert_state_equal(mine.state_dict(), state)
    assert torch.equal(torch.tensor(cli.json("forward", path)["output"]), second)


def test_lazy_inside_a_graph(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "lazygraph.yaml",
        "netinspect: 1\ninput: [2, 6]\nmodel:\n  class: Net\n  modules:\n    a: LazyLinear(4)\n    b: Linear(6, 4)\n"
        "  forward: |\n    return a(x) + b(x)\n",
    )

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.LazyLinear(4)
            self.b = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(x)

    torch.manual_seed(0)
    ref = Net()
    ref(torch.rand(2, 6))
    mine = make(str(path)).built.module
    assert str(mine) == str(ref)
    assert_state_equal(mine.state_dict(), ref.state_dict())


def test_lazy_without_input_is_a_located_error(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "noinput.yaml", "netinspect: 1\nmodel:\n  - LazyLinear(4)\n")
    result = cli.run("validate", path, code=3)
    assert result.stderr.startswith(f"{path}:3:5: error: LazyLinear has no shapes until its first forward pass")
    assert "add input:" in result.stderr
