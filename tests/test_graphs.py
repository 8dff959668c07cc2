"""Graph modules (SPEC §1.1–1.2): each model file against the hand-written nn.Module it stands for.

For every file: the same print(model), state_dict keys/shapes/order and values at a seed, the same
named_parameters (ties included), and the same forward output, bit for bit on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import reference_models as R
import torch
import torch.nn.functional as F
from conftest import Cli, assert_state_equal, probe, seeded, tie_groups, write
from torch import nn

from netinspect.records import shape_tree
from netinspect.session import BuildOptions, make


def built(path: Path, **options: Any) -> nn.Module:
    return make(str(path), BuildOptions(**options)).built.module


def assert_same(mine: nn.Module, ref: nn.Module, *inputs: torch.Tensor, seed: int = 123) -> None:
    """Same print, state_dict, parameter names, requires_grad and ties; the same output for ``inputs``
    (under ``seed``, for dropout masks)."""
    assert str(mine) == str(ref)
    assert_state_equal(mine.state_dict(), ref.state_dict())
    assert [n for n, _ in mine.named_parameters(remove_duplicate=False)] == [n for n, _ in ref.named_parameters(remove_duplicate=False)]
    assert [p.requires_grad for p in mine.parameters()] == [p.requires_grad for p in ref.parameters()]
    assert tie_groups(mine) == tie_groups(ref)
    if inputs:
        torch.manual_seed(seed)
        a = mine(*inputs)
        torch.manual_seed(seed)
        b = ref(*inputs)
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------- ResNet-style


RESNETISH = """
netinspect: 1
input: [2, 3, 16, 16]
blocks:
  BasicBlock:
    required: [inplanes, planes]
    params: {stride: 1}
    body:
      modules:
        conv1: Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        bn1: BatchNorm2d(planes)
        relu: ReLU(inplace=True)
        conv2: Conv2d(planes, planes, 3, padding=1, bias=False)
        bn2: BatchNorm2d(planes)
        downsample:
          if: ${stride != 1 or inplanes != planes}
          sequential:
            - Conv2d(inplanes, planes, 1, stride=stride, bias=False)
            - BatchNorm2d(planes)
      forward: |
        identity = downsample(x) if downsample else x
        out = relu(bn1(conv1(x)))
        out = bn2(conv2(out))
        return relu(out + identity)
model:
  class: ResNet
  modules:
    conv1: Conv2d(3, 8, 3, padding=1, bias=False)
    bn1: BatchNorm2d(8)
    relu: ReLU(inplace=True)
    layer1:
      - BasicBlock(8, 8)
      - BasicBlock(8, 16, stride=2)
    unused: Linear(3, 3)
    avgpool: AdaptiveAvgPool2d((1, 1))
    fc: Linear(16, 10)
  forward: |
    x = relu(bn1(conv1(x)))
    x = layer1(x)
    return fc(torch.flatten(avgpool(x), 1))
init:
  - {types: [Conv2d], weight: "kaiming_normal(mode='fan_out', nonlinearity='relu')"}
  - {types: [BatchNorm2d], weight: ones, bias: zeros}
"""


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2))
        self.unused = nn.Linear(3, 3)  # declared, never called: kept, as PyTorch keeps it
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)
        for m in self.modules():  # torchvision's init loop
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.mark.parametrize("seed", [0, 7])
def test_resnet_style_graph_equals_the_hand_written_class(tmp_path: Path, seed: int) -> None:
    path = write(tmp_path, "resnet.yaml", RESNETISH)
    x = torch.rand(2, 3, 16, 16)
    assert_same(built(path, seed=seed), seeded(ResNet, seed), x)


def test_graph_on_meta_and_in_eval(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "resnet.yaml", RESNETISH)
    meta = built(path, device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert meta(torch.empty(2, 3, 16, 16, device="meta")).shape == (2, 10)
    doc = cli.json("forward", path, "--eval")
    ref = seeded(ResNet).eval()
    seeded(ResNet)  # the model file's build draws the same stream before the input
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(torch.tensor(doc["output"]), ref(x))


def test_forward_reports_graph_steps_by_line(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "resnet.yaml", RESNETISH)
    doc = cli.json("forward", path)
    steps = {(s["module"], s["line"], s["op"]): s for s in doc["steps"]}
    assert steps[("layer1.0", 4, "add")]["output_shape"] == [2, 8, 16, 16]
    assert steps[("layer1.0", 4, "add")]["code"] == "return relu(out + identity)"
    assert steps[("layer1.1", 4, "add")]["output_shape"] == [2, 16, 8, 8]
    assert steps[("", 3, "torch.flatten")]["output_shape"] == [2, 16]
    paths = [m["path"] for m in doc["modules"]]
    assert "layer1.1.downsample.0" in paths and "layer1.0.downsample" not in paths and "unused" not in paths
    text = cli.run("forward", path).stdout
    assert "layer1.0:4" in text and "return relu(out + identity)" in text


# --------------------------------------------------------------------------- a transformer block


TRANSFORMER = """
netinspect: 1
input: {shape: [2, 5], dtype: int64}
vars: {vocab: 50, d: 16, heads: 4, layers: 2}
blocks:
  Block:
    body:
      modules:
        ln_1: LayerNorm(d)
        attn: MultiheadAttention(d, heads, batch_first=True)
        ln_2: LayerNorm(d)
        mlp:
          sequential:
            fc: Linear(d, 4 * d)
            act: GELU(approximate='tanh')
            proj: Linear(4 * d, d)
      forward: |
        h = ln_1(x)
        a, _ = attn(h, h, h, need_weights=False)
        x = x + a
        return x + mlp(ln_2(x))
  Attention:
    required: [n_heads]
    body:
      modules:
        qkv: Linear(d, 3 * d)
        proj: Linear(d, d)
      forward: |
        b, t, c = x.shape
        q, k, v = qkv(x).split(d, dim=2)
        q = q.view(b, t, n_heads, c // n_heads).transpose(1, 2)
        k = k.view(b, t, n_heads, c // n_heads).transpose(1, 2)
        v = v.view(b, t, n_heads, c // n_heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return proj(y.transpose(1, 2).contiguous().view(b, t, c))
model:
  class: TinyLM
  modules:
    embed: Embedding(vocab, d)
    pos: {param: [1, 5, d], init: "normal(std=0.02)"}
    mask_scale: {buffer: [1], init: ones, persistent: false}
    blocks:
      - {use: Block, repeat: "${layers}"}
    sdpa: Attention(heads)
    ln_f: LayerNorm(d)
    head: Linear(d, vocab, bias=False)
  forward: |
    x = embed(x) + pos * mask_scale
    for block in blocks:
        x = block(x)
    x = x + sdpa(x)
    return head(ln_f(x)), x.mean(-1)
tie:
  - {param: head.weight, to: embed.weight}
"""


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc", nn.Linear(d, 4 * d))
        self.mlp.add_module("act", nn.GELU(approximate="tanh"))
        self.mlp.add_module("proj", nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        x = x + a
        return x + self.mlp(self.ln_2(x))


class Attention(nn.Module):
    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.d, self.n_heads = d, n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(self.d, dim=2)
        q = q.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2)
        k = k.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2)
        v = v.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))


class TinyLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        vocab, d = 50, 16
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.empty(1, 5, d))
        nn.init.normal_(self.pos, std=0.02)
        self.register_buffer("mask_scale", torch.ones(1), persistent=False)
        self.blocks = nn.Sequential(Block(d, 4), Block(d, 4))
        self.sdpa = Attention(d, 4)
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed(x) + self.pos * self.mask_scale
        for block in self.blocks:
            x = block(x)
        x = x + self.sdpa(x)
        return self.head(self.ln_f(x)), x.mean(-1)


def test_transformer_graph_with_tensors_loops_ties_and_tuples(tmp_path: Path) -> None:
    path = write(tmp_path, "tiny.yaml", TRANSFORMER)
    mine = built(path)
    ref = seeded(TinyLM)
    assert_same(mine, ref, torch.randint(0, 50, (2, 5)))
    assert "mask_scale" not in mine.state_dict() and mine.get_buffer("mask_scale").item() == 1.0
    assert mine.head.weight is mine.embed.weight
    meta = built(path, device="meta")  # structure only: no values on meta
    assert str(meta) == str(ref)
    assert [(k, v.shape) for k, v in meta.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    assert meta.head.weight is meta.embed.weight


def test_graph_class_is_compiled_once_and_shared() -> None:
    import tempfile

    from netinspect.build.fxgraph import GraphModule

    with tempfile.TemporaryDirectory() as d:
        mine = built(write(Path(d), "tiny.yaml", TRANSFORMER))
    a, b = mine.blocks[0], mine.blocks[1]
    assert isinstance(a, GraphModule) and type(a) is type(b)
    assert type(a).__name__ == "Block" and "def forward(self, x)" in type(a).code
    assert type(a).graph is type(b).graph


# --------------------------------------------------------------------------- inception: branches joined by cat


INCEPTION = """
netinspect: 1
input: [1, 8, 6, 6]
blocks:
  Conv:
    required: [cin, cout]
    params: {k: 1}
    body:
      modules:
        conv: Conv2d(cin, cout, k, padding=k // 2, bias=False)
        bn: BatchNorm2d(cout, eps=0.001)
      forward: |
        return F.relu(bn(conv(x)), inplace=True)
model:
  class: Inception
  modules:
    branch1: Conv(8, 4)
    branch2: ['Conv(8, 3)', 'Conv(3, 4, k=3)']
    branch3: ['Conv(8, 2)', 'Conv(2, 4, k=3)']
    branch4:
      - MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
      - Conv(8, 4)
  forward: |
    outputs = [branch1(x), branch2(x), branch3(x), branch4(x)]
    return torch.cat(outputs, 1)
"""


class Conv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branch1 = Conv(8, 4)
        self.branch2 = nn.Sequential(Conv(8, 3), Conv(3, 4, k=3))
        self.branch3 = nn.Sequential(Conv(8, 2), Conv(2, 4, k=3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), Conv(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(outputs, 1)


def test_inception_branches_joined_by_cat(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "inception.yaml", INCEPTION)
    assert_same(built(path), seeded(Inception), torch.rand(1, 8, 6, 6))
    doc = cli.json("forward", path)
    (cat,) = [s for s in doc["steps"] if s["op"] == "torch.cat"]
    assert cat["output_shape"] == [1, 16, 6, 6] and cat["line"] == 2


# --------------------------------------------------------------------------- conditions, inputs, frozen parts


def test_if_on_list_items_keeps_indices_and_frozen_graph_children(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "if.yaml",
        "netinspect: 1\n"
        "vars: {deep: false, width: 4}\n"
        "model:\n"
        "  class: Two\n"
        "  inputs: [x, y]\n"
        "  modules:\n"
        "    body:\n"
        "      - Linear(width, width)\n"
        "      - {if: '${deep}', type: Linear, args: [4, 4]}\n"
        "      - {if: '${width == 4}', type: ReLU}\n"
        "    side: {type: Linear, args: [4, 4], frozen: true}\n"
        "    extra: {if: false, type: Linear, args: [9, 9]}\n"
        "  forward: |\n"
        "    z = body(x) * (2 if width > 3 else 3)\n"
        "    w = side(y) if not extra else y\n"
        "    return z + w\n",
    )

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential()
            self.body.add_module("0", nn.Linear(4, 4))
            self.body.add_module("2", nn.ReLU())
            self.side = nn.Linear(4, 4)
            self.side.requires_grad_(False)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.body(x) * 2 + self.side(y)

    assert_same(built(path), seeded(Two), torch.rand(3, 4), torch.rand(3, 4))


def test_graph_child_with_several_inputs_called_by_keyword(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kw.yaml",
        "netinspect: 1\n"
        "blocks:\n"
        "  Gate:\n"
        "    body:\n"
        "      inputs: [x, scale]\n"
        "      modules: {lin: 'Linear(4, 4)'}\n"
        "      forward: |\n"
        "        return torch.sigmoid(lin(x)) * scale\n"
        "model:\n"
        "  modules:\n"
        "    gate: Gate\n"
        "  forward: |\n"
        "    return gate(x, scale=x.sum(-1, keepdim=True))\n",
    )

    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.lin(x)) * scale

    class Graph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = Gate()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.gate(x, scale=x.sum(-1, keepdim=True))

    assert_same(built(path), seeded(Graph), torch.rand(2, 4))


def test_shared_module_called_twice_and_rules_inside_graphs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "shared.yaml",
        "netinspect: 1\n"
        "shared: {enc: 'Linear(4, 4)'}\n"
        "model:\n"
        "  modules:\n"
        "    a: {ref: enc}\n"
        "    b: {ref: enc}\n"
        "    out: {type: Linear, args: [4, 2], init: [{weight: 'constant(0.5)'}]}\n"
        "  forward: |\n"
        "    return out(b(a(x)))\n",
    )

    class Graph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            enc = nn.Linear(4, 4)
            self.a = enc
            self.b = enc
            self.out = nn.Linear(4, 2)
            nn.init.constant_(self.out.weight, 0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.b(self.a(x)))

    assert_same(built(path), seeded(Graph), torch.rand(3, 4))


# --------------------------------------------------------------------------- located errors, torch-free


@pytest.mark.parametrize(
    ("forward", "where", "message"),
    [
        ("return x.__class__", (1, 10), "the name '__class__' is not allowed"),
        ("return lin(x).weight", (1, 15), "the attribute '.weight' is not allowed"),
        ("y = lin(x)\nreturn getattr(y, 'data')", (2, 8), "unknown name 'getattr'"),
        ("return torch.load(x)", (1, 14), "'torch.load' is not in the allow-list"),
        ("return x.storage()", (1, 10), "the method '.storage()' is not in the allow-list"),
        ("return nope(x)", (1, 8), "unknown name 'nope'"),
        ("y = lin(x)", (1, 1), "the forward has no 'return'"),
        ("return lin(x)\ny = x", (1, 1), "'return' must be the last statement of the forward"),
        ("import os\nreturn x", (1, 1), "'import' is not allowed in forward"),
        ("for i in x:\n    x = lin(x)\nreturn x", (1, 10), "'for' runs over a sequential child"),
        ("return lin(x, x)", (1, 8), "'lin' cannot be called this way"),
        ("x += 1\nreturn x", (1, 1), "augmented assignment '+=' is not allowed"),
        ("return [lin(v) for v in x]", (1, 8), "a comprehension is not allowed in forward"),
        ("return x if x.shape[0] > 1 else x", (1, 13), "a condition must be constant"),
    ],
)
def test_bad_forward_is_a_located_error(tmp_path: Path, cli: Cli, forward: str, where: tuple[int, int], message: str) -> None:
    body = "".join(f"    {line}\n" for line in forward.splitlines())
    path = write(tmp_path, "bad.yaml", f"netinspect: 1\nmodel:\n  modules:\n    lin: Linear(4, 4)\n  forward: |\n{body}")
    result = cli.run("validate", path, code=3)
    line = result.stderr.strip().splitlines()[0]
    want_line, want_col = where[0] + 5, where[1] + 4
    assert line.startswith(f"{path}:{want_line}:{want_col}: error: {message}"), line
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_forward_errors_never_import_torch(tmp_path: Path) -> None:
    path = write(
        tmp_path, "bad.yaml", "netinspect: 1\nmodel:\n  modules: {lin: 'Linear(4, 4)'}\n  forward: |\n    return lin(x).__dict__\n"
    )
    state, code, err = probe("validate", str(path))
    assert (state, code) == ("NO-TORCH", "3"), err
    assert ":5:19: error: the name '__dict__' is not allowed" in err


def test_runtime_failure_names_the_forward_line(tmp_path: Path, cli: Cli) -> None:
    path = write(
        tmp_path,
        "shape.yaml",
        "netinspect: 1\ninput: [2, 4]\nmodel:\n  modules:\n    a: Linear(4, 8)\n    b: Linear(4, 3)\n"
        "  forward: |\n    y = a(x)\n    return y + b(x)\n",
    )
    result = cli.run("forward", path, code=1)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{path}:9:12: error: forward failed in the root module (Graph)"), line
    assert "The size of tensor a (8) must match the size of tensor b (3)" in line


def test_granted_function(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myfns_ni.py").write_text("import torch\n\ndef swish(x):\n    return x * torch.sigmoid(x)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path, "g.yaml", "netinspect: 1\ninput: [2, 4]\nmodel:\n  modules: {}\n  forward: |\n    return swish(x) * 2\n")
    result = cli.run("validate", path, code=3)
    assert "unknown name 'swish'" in result.stderr
    doc = cli.json("forward", path, "--allow", "myfns_ni:swish")
    torch.manual_seed(0)
    x = torch.rand(2, 4)
    assert torch.equal(torch.tensor(doc["output"]), x * torch.sigmoid(x) * 2)


# --------------------------------------------------------------------------- the allow-list


SPEC_FUNCTIONS = (
    "cat stack flatten reshape transpose permute matmul bmm einsum add mul sub div neg exp sqrt rsqrt pow mean sum amax softmax "
    "sigmoid tanh relu arange outer cos sin chunk split where zeros ones full zeros_like ones_like triu tril polar view_as_complex "
    "view_as_real"
)
SPEC_F = (
    "relu gelu silu sigmoid softmax log_softmax dropout scaled_dot_product_attention layer_norm rms_norm linear embedding pad "
    "interpolate normalize adaptive_avg_pool2d avg_pool2d max_pool2d"
)
SPEC_METHODS = (
    "view reshape transpose permute flatten contiguous chunk split unbind unsqueeze squeeze expand repeat repeat_interleave mean sum "
    "softmax size float to type_as masked_fill view_as reshape_as t"
)


def test_the_allow_list_holds_the_spec_set_and_names_real_torch_functions(cli: Cli) -> None:
    from netinspect import ops

    assert set(SPEC_FUNCTIONS.split()) <= set(ops.TORCH_FUNCTIONS)
    assert set(SPEC_F.split()) <= set(ops.F_FUNCTIONS)
    assert set(SPEC_METHODS.split()) <= set(ops.METHODS)
    assert {"shape", "dtype", "device", "ndim"} <= set(ops.ATTRIBUTES)
    assert all(callable(getattr(torch, n)) for n in ops.TORCH_FUNCTIONS)
    assert all(callable(getattr(F, n)) for n in ops.F_FUNCTIONS)
    assert all(callable(getattr(torch.Tensor, n)) for n in ops.METHODS)
    x = torch.zeros(2, 3)
    assert all(hasattr(x, n) for n in ops.ATTRIBUTES)
    assert all(isinstance(getattr(torch, n), torch.dtype) for n in ops.DTYPE_CONSTANTS)
    doc = cli.json("ops")
    assert set(doc) >= {"functions", "methods", "attributes"}
    assert "F.scaled_dot_product_attention" in doc["functions"] and "torch.cat" in doc["functions"] and "view" in doc["methods"]


# --------------------------------------------------------------------------- modules passed to constructors


def test_module_valued_arguments_are_built_as_pytorch_builds_them(tmp_path: Path, cli: Cli) -> None:
    """TransformerEncoder deep-copies the layer it is given: its values are copies of one layer's."""
    path = write(
        tmp_path,
        "enc.yaml",
        "netinspect: 1\ninput: [2, 5, 16]\nmodel:\n"
        "  - TransformerEncoder(TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True), 2, enable_nested_tensor=False)\n"
        "  - Linear(16, 3)\n",
    )

    def ref() -> nn.Module:
        layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
        return nn.Sequential(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), nn.Linear(16, 3))

    for seed in (0, 5):
        assert_same(built(path, seed=seed), seeded(ref, seed), torch.rand(2, 5, 16))
    meta = built(path, device="meta")
    assert [(k, v.shape) for k, v in meta.state_dict().items()] == [(k, v.shape) for k, v in seeded(ref).state_dict().items()]
    bad = write(tmp_path, "bad.yaml", "netinspect: 1\nmodel:\n  - Linear(open('/etc/passwd'), 8)\n")
    result = cli.run("validate", bad, code=3)
    assert "the call open('/etc/passwd') is not allowed as an argument: unknown module type 'open'" in result.stderr


def module_outputs(name: str, shape: list[int]) -> list[tuple[str, str, Any]]:
    """(path, class, output shape) of every module call of the plain-torch reference on an input of
    ``shape`` (tokens for the language models), as forward hooks see them, in module-tree order."""
    model = seeded(R.REFERENCES[name]).train()
    x = torch.randint(0, 2, shape) if name in ("llama-tiny", "tinylm") else torch.rand(shape)
    path = {id(m): p for p, m in model.named_modules()}  # none of these models has a module at two paths
    calls: list[tuple[str, str, Any]] = []

    def record(mod: nn.Module, args: Any, out: Any) -> None:
        calls.append((path[id(mod)], type(mod).__name__, shape_tree(out)))

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    order = {p: i for i, (p, _) in enumerate(model.named_modules())}
    return sorted(calls, key=lambda c: order[c[0]])


@pytest.mark.parametrize("name", ["llama-tiny", "tinylm", "inception", "resnet18"])
def test_forward_on_meta_reports_what_cpu_reports(cli: Cli, name: str) -> None:
    """On meta the forward runs through the cost engine (a repeated block runs once, its records are
    replayed): the modules and steps it reports, shapes included, are those of the real run on CPU."""
    meta = cli.json("forward", name, "--device", "meta")
    cpu = cli.json("forward", name)
    assert [(m["path"], m["type"], m["output_shape"]) for m in cpu["modules"]] == module_outputs(name, cpu["input_shape"])
    assert meta["modules"] == cpu["modules"]
    assert meta["steps"] == cpu["steps"]
    assert meta["output_shape"] == cpu["output_shape"] and meta["output"] is None
