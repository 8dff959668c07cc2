"""The builder against plain torch: frozen nodes, dtypes, meta builds, ties, blocks, repeat, vars,
named sequentials, scoped init rules, seeds and devices. Each model file is written here, next to
the PyTorch code it must be equivalent to."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import reference_models as R
import torch
from conftest import Cli, assert_state_equal, d2l_mlp, run_process, seeded, tie_groups, unique_numel, write
from torch import nn

from netinspect.session import BuildOptions, make

cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def build(path: Path | str, device: str = "cpu", dtype: str | None = None, seed: int | None = None) -> nn.Module:
    return make(str(path), BuildOptions(device=device, dtype=dtype, seed=seed)).built.module


def assert_same_module(mine: nn.Module, ref: nn.Module) -> None:
    """print(model), state_dict keys/shapes/dtypes/order and values, requires_grad, ties."""
    assert str(mine) == str(ref)
    assert_state_equal(mine.state_dict(), ref.state_dict())
    assert [(n, p.requires_grad) for n, p in mine.named_parameters(remove_duplicate=False)] == [
        (n, p.requires_grad) for n, p in ref.named_parameters(remove_duplicate=False)
    ]
    assert tie_groups(mine) == tie_groups(ref)


# ------------------------------------------------------------------------------------------------ frozen

FROZEN = """\
netinspect: 1
input: [2, 4]
model:
  - type: Linear
    args: [4, 8]
    frozen: true
  - ReLU
  - sequential:
      - Linear(8, 8)
      - Tanh
      - Linear(8, 1)
    frozen: true
  - Linear(1, 2)
"""


def frozen_ref() -> nn.Module:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1)), nn.Linear(1, 2))
    net[0].requires_grad_(False)
    net[2].requires_grad_(False)
    return net


def test_frozen_nodes(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "frozen.yaml", FROZEN)
    ref = seeded(frozen_ref)
    assert_same_module(build(path), ref)
    doc = cli.json("params", path)
    assert [(r["name"], r["requires_grad"]) for r in doc["parameters"]] == [(n, p.requires_grad) for n, p in ref.named_parameters()]
    assert doc["totals"]["trainable"] == sum(p.numel() for p in ref.parameters() if p.requires_grad) == 4
    assert doc["totals"]["unique"] == unique_numel(ref)


# ------------------------------------------------------------------------------------------------ dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_flag(cli: Cli, dtype: torch.dtype) -> None:
    name = str(dtype).removeprefix("torch.")
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(4, 8, dtype=dtype), nn.ReLU(), nn.Linear(8, 1, dtype=dtype))
    mine = build("mlp", dtype=name)
    assert_same_module(mine, ref)
    doc = cli.json("params", "--dtype", name)
    assert {r["dtype"] for r in doc["parameters"]} == {name}
    assert doc["totals"]["bytes"] == sum(p.numel() * p.element_size() for p in ref.parameters())
    entries = cli.json("state-dict", "--dtype", name, "--values")["entries"]
    assert [e["values"] for e in entries] == [v.tolist() for v in ref.state_dict().values()]


def test_dtype_float64_forward(cli: Cli) -> None:
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(4, 8, dtype=torch.float64), nn.ReLU(), nn.Linear(8, 1, dtype=torch.float64))
    out = ref(torch.rand(2, 4, dtype=torch.float64))
    assert cli.json("forward", "--dtype", "float64")["output"] == out.tolist()


def test_dtype_key_in_the_file_and_buffers(tmp_path: Path) -> None:
    path = write(tmp_path, "bf16.yaml", "netinspect: 1\ndtype: bfloat16\nmodel: ['Linear(4, 8)', BatchNorm1d(8)]\n")
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(4, 8, dtype=torch.bfloat16), nn.BatchNorm1d(8, dtype=torch.bfloat16))
    mine = build(path)
    assert_same_module(mine, ref)
    assert mine.state_dict()["1.num_batches_tracked"].dtype == torch.int64  # buffers keep integer dtypes
    assert build(path, dtype="float32").state_dict()["0.weight"].dtype == torch.float32  # the flag wins


# ------------------------------------------------------------------------------------------------ meta


@pytest.mark.parametrize("name", ["mlp-bn", "tinylm", "alexnet", "llama-70b"])
def test_meta_build_allocates_nothing(cli: Cli, name: str) -> None:
    mine = build(name, device="meta")
    tensors = list(mine.state_dict(keep_vars=True).values()) + list(mine.parameters()) + list(mine.buffers())
    assert tensors and all(t.is_meta for t in tensors)
    if name in R.BIG:
        ref = R.REFERENCES[name]()
    else:
        with torch.device("meta"):
            ref = R.REFERENCES[name]()
    assert str(mine) == str(ref)
    assert unique_numel(mine) == unique_numel(ref)
    assert tie_groups(mine) == tie_groups(ref)
    doc = cli.json("params", name, "--device", "meta")
    assert {r["device"] for r in doc["parameters"]} == {"meta"} and doc["device"] == "meta"


def test_meta_refuses_values(cli: Cli) -> None:
    for args in (("init", "mlp"), ("state-dict", "mlp", "--values"), ("state-dict", "mlp", "--key", "2.bias")):
        result = cli.run(*args, "--device", "meta", code=2)
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "meta" in lines[0] and "Traceback" not in result.stderr


def test_meta_forward_reports_shapes(cli: Cli) -> None:
    with torch.device("meta"):
        ref = R.REFERENCES["alexnet"]()
        out = ref(torch.empty(1, 3, 224, 224))
    doc = cli.json("forward", "alexnet", "--device", "meta")
    assert doc["output_shape"] == list(out.shape) == [1, 1000]
    text = cli.run("forward", "alexnet", "--device", "meta").stdout
    assert "[1, 1000]" in text


# ------------------------------------------------------------------------------------------------ ties

TIE = """\
netinspect: 1
model:
  sequential:
    embed: Embedding(10, 4)
    proj: Linear(4, 4)
    head: Linear(4, 10, bias=False)
tie:
  - {param: head.weight, to: embed.weight}
"""


def tie_ref() -> nn.Module:
    model = nn.Sequential(OrderedDict(embed=nn.Embedding(10, 4), proj=nn.Linear(4, 4), head=nn.Linear(4, 10, bias=False)))
    model.head.weight = model.embed.weight
    return model


def test_tie_survives_materialisation(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "tie.yaml", TIE)
    mine = build(path)
    assert mine.head.weight is mine.embed.weight
    assert_same_module(mine, seeded(tie_ref))
    for dtype in ("float64", "bfloat16"):
        m = build(path, dtype=dtype)
        assert m.head.weight is m.embed.weight
    tinylm = build("tinylm")
    assert tinylm.head.weight is tinylm.embed.weight
    assert_same_module(tinylm, seeded(R.REFERENCES["tinylm"]))


def test_tie_survives_loading_weights(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "tie.yaml", TIE)
    ref = seeded(tie_ref, seed=3)
    for fmt in ("pt", "safetensors"):
        target = tmp_path / f"w.{fmt}"
        cli.run("init", path, "--seed", "3", "--save", target)
        mine = make(str(path), BuildOptions(seed=0, weights=target)).built.module
        assert mine.head.weight is mine.embed.weight
        assert_state_equal(mine.state_dict(), ref.state_dict())


def test_shared_cause_tie_versus_module(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "tie.yaml", TIE)
    doc = cli.json("shared", path)
    assert [(g["paths"], g["cause"]) for g in doc["groups"]] == [(["embed.weight", "head.weight"], "tie")]
    assert [(g["paths"], g["cause"]) for g in cli.json("shared", "tinylm")["groups"]] == [(["embed.weight", "head.weight"], "tie")]
    tied = cli.json("shared", "tied")
    assert [(g["paths"], g["cause"]) for g in tied["groups"]] == [(["2.weight", "4.weight"], "module"), (["2.bias", "4.bias"], "module")]
    text = cli.run("shared", path).stdout
    assert "tie" in text and "embed.weight" in text and "head.weight" in text


def test_tied_parameter_is_initialised_once(tmp_path: Path) -> None:
    """A rule over every weight draws once for the tied tensor, as a PyTorch loop over parameters() does."""
    path = write(tmp_path, "tie.yaml", TIE + "init:\n  - weight: normal(std=0.02)\n")
    ref = seeded(tie_ref)
    with torch.no_grad():
        for p in (ref.embed.weight, ref.proj.weight):  # head.weight is embed.weight: once
            nn.init.normal_(p, std=0.02)
    mine = build(path)
    assert mine.head.weight is mine.embed.weight
    assert_state_equal(mine.state_dict(), ref.state_dict())


def test_tie_shape_mismatch_is_an_error(cli: Cli, tmp_path: Path) -> None:
    text = TIE.replace("Linear(4, 10, bias=False)", "Linear(4, 9, bias=False)")
    path = write(tmp_path, "bad-tie.yaml", text)
    result = cli.run("params", path, code=3)
    line = next(i for i, s in enumerate(text.splitlines()) if "param: head.weight" in s) + 1
    assert f"bad-tie.yaml:{line}:" in result.stderr
    assert "Traceback" not in result.stderr


def test_ref_is_module_reuse(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ref.yaml",
        "netinspect: 1\nshared:\n  enc: Linear(4, 4)\n  act: Tanh\nmodel:\n  - Linear(4, 4)\n  - ref: enc\n  - ref: act\n  - ref: enc\n",
    )

    def ref() -> nn.Module:
        enc = nn.Linear(4, 4)
        act = nn.Tanh()
        return nn.Sequential(nn.Linear(4, 4), enc, act, enc)

    mine = build(path)
    assert mine[1] is mine[3]
    assert_same_module(mine, seeded(ref))


def test_a_module_reused_many_times(cli: Cli, tmp_path: Path) -> None:
    """Six paths to one Linear: counted once, every path in JSON, a short line for humans."""
    children = "".join(f"    r{i}: {{ref: enc}}\n" for i in range(6))
    path = write(tmp_path, "reuse.yaml", "netinspect: 1\nshared:\n  enc: Linear(4, 4)\nmodel:\n  sequential:\n" + children)
    mine = build(path)
    ref = seeded(lambda: (lambda enc: nn.Sequential(OrderedDict((f"r{i}", enc) for i in range(6))))(nn.Linear(4, 4)))
    assert_same_module(mine, ref)
    doc = cli.json("shared", path)
    assert [g["paths"] for g in doc["groups"]] == tie_groups(ref)
    assert doc["groups"][0]["paths"] == [f"r{i}.weight" for i in range(6)]
    tree = cli.json("tree", path)["root"]["children"]
    assert [(c["path"], c["shared_with"]) for c in tree] == [(f"r{i}", [f"r{j}" for j in range(6) if j != i]) for i in range(6)]
    assert "[shared: also at r0, r1, r3 and 2 more]" in cli.run("tree", path).stdout.splitlines()[3]  # r2's line
    text = cli.run("shared", path).stdout
    assert "r0.weight = r1.weight = r2.weight = … = r5.weight  (6 paths)" in text
    assert f"{unique_numel(ref)} unique · {6 * 20} by path ({5 * 20} counted again by naive tools)" in text


def test_quadratic_shared_with_is_refused_past_a_limit(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC's shared_with repeats, on each path, the other paths: N paths to one object give N(N-1)
    entries. Past the limit --json refuses (exit 2) and points at shared --json; text abbreviates."""
    import netinspect.session

    children = "".join(f"    r{i}: {{ref: enc}}\n" for i in range(6))
    path = write(tmp_path, "reuse.yaml", "netinspect: 1\nshared:\n  enc: Linear(4, 4)\nmodel:\n  sequential:\n" + children)
    assert len(cli.json("params", path)["parameters"]) == 12  # 2 * 6 * 5 = 60 entries: under the limit
    for command, entries, what in (("params", 60, "Parameter"), ("tree", 30, "module")):
        monkeypatch.setattr(netinspect.session, "SHARED_WITH_LIMIT", entries)
        cli.json(command, path)  # at the limit
        monkeypatch.setattr(netinspect.session, "SHARED_WITH_LIMIT", entries - 1)
        result = cli.run(command, path, "--json", code=2)
        assert result.stdout == ""
        (line,) = result.stderr.strip().splitlines()
        error = json.loads(line)["error"]
        assert f"would repeat {entries} paths under shared_with: one {what} is reached by 6 paths" in error["message"]
        assert "shared --json" in error["hint"]
    assert len(cli.json("shared", path)["groups"]) == 2
    assert "and 2 more" in cli.run("params", path).stdout


def test_shared_name_called_is_an_error(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "netinspect: 1\nshared:\n  enc: Linear(4, 4)\nmodel:\n  - enc\n  - ReLU\n")
    result = cli.run("tree", path, code=3)
    assert "s.yaml:5:" in result.stderr and "ref: enc" in result.stderr


# ------------------------------------------------------------------------------------------------ blocks

BLOCKS = """\
netinspect: 1
input: [2, 4]
vars: {width: 8}
blocks:
  mlp_block:
    params: {d_in: 4, hidden: 8}
    required: [d_out]
    body:
      - Linear(d_in, hidden)
      - ReLU
      - Linear(hidden, d_out)
model:
  - use: mlp_block
    with: {d_out: 3}
  - mlp_block(d_in=3, d_out=2)
  - use: mlp_block
    with:
      d_in: 2
      hidden: ${width * 2}
      d_out: 1
"""


def blocks_ref() -> nn.Module:
    def mlp_block(d_in: int = 4, hidden: int = 8, *, d_out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))

    return nn.Sequential(mlp_block(d_out=3), mlp_block(d_in=3, d_out=2), mlp_block(d_in=2, hidden=16, d_out=1))


def test_blocks_with_params_required_and_with(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "blocks.yaml", BLOCKS)
    ref = seeded(blocks_ref)
    mine = build(path)
    assert_same_module(mine, ref)
    assert len({id(m) for m in mine.children()}) == 3  # every use is a new instance
    x = torch.rand(2, 4)
    assert cli.json("forward", path)["output"] == ref(x).tolist()


def test_block_missing_required_parameter(cli: Cli, tmp_path: Path) -> None:
    text = BLOCKS.replace("  - mlp_block(d_in=3, d_out=2)\n", "  - mlp_block(d_in=3)\n")
    path = write(tmp_path, "blocks.yaml", text)
    result = cli.run("tree", path, code=3)
    line = text.splitlines().index("  - mlp_block(d_in=3)") + 1
    assert "d_out" in result.stderr and f"blocks.yaml:{line}:" in result.stderr


# ------------------------------------------------------------------------------------------------ repeat, vars, named sequential

REPEAT = """\
netinspect: 1
vars: {d: 6}
model:
  sequential:
    stem: Linear(4, d)
    layers:
      - type: Linear
        args: ["${d}", "${d}"]
        repeat: 3
        name: "layer{i}"
    act:
      - type: ReLU
        repeat: 2
      - Linear(d, 1)
"""


def repeat_ref() -> nn.Module:
    d = 6
    stem = nn.Linear(4, d)
    layers = nn.Sequential()
    for i in range(3):
        layers.add_module(f"layer{i}", nn.Linear(d, d))
    act = nn.Sequential(nn.ReLU(), nn.ReLU(), nn.Linear(d, 1))
    return nn.Sequential(OrderedDict(stem=stem, layers=layers, act=act))


def test_repeat_with_name_templates_and_named_sequential(tmp_path: Path) -> None:
    path = write(tmp_path, "repeat.yaml", REPEAT)
    mine = build(path)
    assert_same_module(mine, seeded(repeat_ref))
    assert [n for n, _ in mine.named_children()] == ["stem", "layers", "act"]
    assert [n for n, _ in mine.layers.named_children()] == ["layer0", "layer1", "layer2"]
    assert len({id(p) for p in mine.layers.parameters()}) == 6  # copies, not one module three times
    assert not torch.equal(mine.layers.layer0.weight, mine.layers.layer1.weight)


MANY_KINDS = """\
netinspect: 1
blocks:
  cell:
    body:
      - Linear(4, 4)
      - BatchNorm1d(4)
      - LayerNorm(4)
      - RMSNorm(4)
      - Embedding(10, 4, padding_idx=0)
      - Conv2d(2, 2, 3, padding="same")
      - PReLU
      - Bilinear(2, 3, 4)
      - MultiheadAttention(8, 2)
      - TransformerEncoderLayer(8, 2, 16)
      - LSTM(4, 4)
      - GELU(approximate="tanh")
      - Unflatten(1, [2, 2])
      - type: Linear
        args: [4, 2]
        frozen: true
model:
  - use: cell
    repeat: 3
"""


def many_kinds_ref() -> nn.Module:
    def cell() -> nn.Module:
        net = nn.Sequential(
            nn.Linear(4, 4), nn.BatchNorm1d(4), nn.LayerNorm(4), nn.RMSNorm(4), nn.Embedding(10, 4, padding_idx=0),
            nn.Conv2d(2, 2, 3, padding="same"), nn.PReLU(), nn.Bilinear(2, 3, 4), nn.MultiheadAttention(8, 2),
            nn.TransformerEncoderLayer(8, 2, 16), nn.LSTM(4, 4), nn.GELU(approximate="tanh"), nn.Unflatten(1, [2, 2]),
            nn.Linear(4, 2),
        )  # fmt: skip
        net[13].requires_grad_(False)
        return net

    return nn.Sequential(cell(), cell(), cell())


def assert_same_state(mine: nn.Module, ref: nn.Module) -> None:
    """Module by module: class, every attribute of ``__dict__`` (plain values equal, containers of the
    same kind and contents), and parameters/buffers of the same kind, shape, dtype, device, grad flag."""
    pairs = list(zip(mine.modules(), ref.modules(), strict=True))
    for a, b in pairs:
        assert type(a) is type(b)
        assert list(vars(a)) == list(vars(b)), type(a).__name__
        for key, va in vars(a).items():
            vb = vars(b)[key]
            if key in ("_parameters", "_buffers"):
                assert list(va) == list(vb)
                for name in va:
                    ta, tb = va[name], vb[name]
                    assert (ta is None) == (tb is None)
                    if ta is not None:
                        assert (type(ta), ta.shape, ta.dtype, ta.device, ta.requires_grad) == (
                            type(tb), tb.shape, tb.dtype, tb.device, tb.requires_grad
                        ), f"{type(a).__name__}.{name}"  # fmt: skip
            elif key == "_modules":
                assert list(va) == list(vb)
            elif key == "_flat_weights":  # LSTM: its own parameters, in order
                assert [t is None for t in va] == [t is None for t in vb]
            elif key == "_flat_weight_refs":
                assert len(va) == len(vb)
            else:
                assert type(va) is type(vb) and va == vb, f"{type(a).__name__}.{key}"
    # every module, parameter and buffer is its own object, as three plain constructions give
    assert len({id(m) for m, _ in pairs}) == len(pairs)
    tensors = [t for m in mine.modules() for t in (*m._parameters.values(), *m._buffers.values()) if t is not None]
    assert len({id(t) for t in tensors}) == len(tensors)


def test_repeated_modules_equal_fresh_constructions(tmp_path: Path) -> None:
    """Copies of a repeated leaf made on meta hold what ``cls(*args)`` would (and the values after
    materialising are those of three plain constructions)."""
    path = write(tmp_path, "kinds.yaml", MANY_KINDS)
    with torch.device("meta"):
        meta_ref = many_kinds_ref()
    assert_same_state(build(path, device="meta"), meta_ref)
    mine = build(path)
    ref = seeded(many_kinds_ref)
    assert_same_state(mine, ref)
    assert_same_module(mine, ref)
    assert mine[2][10]._flat_weights[0] is mine[2][10].weight_ih_l0  # LSTM keeps its own weights


def test_equal_calls_on_different_lines_are_each_their_own_module(tmp_path: Path) -> None:
    """Calls written out on many lines are copied from the first equal one on meta; 'equal' keeps
    the types (0, 0.0, -0.0 and False are equal in Python, not in the module they build)."""
    text = (
        "netinspect: 1\nmodel:\n"
        "  - Linear(4, 4)\n  - Linear(4,4)\n  - Linear(4, 4, True)\n  - Linear(4, 4, 1)\n"
        "  - Dropout(0)\n  - Dropout(0.0)\n  - Dropout(-0.0)\n  - Dropout(False)\n"
        "  - 'Unflatten(1, [2, 2])'\n  - 'Unflatten(1, (2, 2))'\n  - 'Unflatten(1, [2, 2])'\n"
    )
    path = write(tmp_path, "lines.yaml", text)

    def ref() -> nn.Module:
        return nn.Sequential(
            nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4, True), nn.Linear(4, 4, 1),  # type: ignore[arg-type]
            nn.Dropout(0), nn.Dropout(0.0), nn.Dropout(-0.0), nn.Dropout(False),
            nn.Unflatten(1, [2, 2]), nn.Unflatten(1, (2, 2)), nn.Unflatten(1, [2, 2]),
        )  # fmt: skip

    with torch.device("meta"):
        meta_ref = ref()
    mine = build(path, device="meta")
    assert_same_state(mine, meta_ref)
    assert str(mine) == str(meta_ref) and "p=-0.0" in str(mine) and "p=False" in str(mine)
    assert mine[8].unflattened_size is not mine[10].unflattened_size  # a list of its own, as two calls give
    assert_same_module(build(path), seeded(ref))


def test_copies_are_made_only_of_self_contained_modules() -> None:
    from netinspect.build.clone import cloneable

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = self.a

    class Closure(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f = lambda x: self.training

    class Listed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.weights = [self.lin.weight]

    for cls in (Twice, Closure, Listed):
        cls.__module__ = "torch.nn.modules.fake"
        assert not cloneable(cls()), cls.__name__
    assert not cloneable(nn.LSTM(2, 2))
    assert cloneable(nn.TransformerEncoderLayer(8, 2, 16)) and cloneable(nn.Conv2d(2, 2, 3, padding="same"))
    assert not cloneable(type("Outside", (nn.Identity,), {})())  # a class from outside torch.nn


def test_repeat_name_needs_a_template(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", REPEAT.replace('name: "layer{i}"', 'name: "layer"'))
    result = cli.run("tree", path, code=3)
    assert "{i}" in result.stderr


VARS = """\
netinspect: 1
vars: {d_in: 4, hidden: 8, p: 0.25, eps: 0.001}
model:
  - Linear(d_in, hidden * 2)
  - type: BatchNorm1d
    args: ["${hidden * 2}"]
    kwargs:
      eps: ${eps / 10}
      momentum: 0.2
  - Dropout(p=p * 2)
  - Linear(hidden * 2, hidden // 3 + 1, bias=False)
  - Linear(hidden // 3 + 1, 2 ** 2)
  - type: LeakyReLU
    args: ["${-0.5 + 0.6}"]
"""


def vars_ref() -> nn.Module:
    d_in, hidden, p, eps = 4, 8, 0.25, 0.001
    return nn.Sequential(
        nn.Linear(d_in, hidden * 2),
        nn.BatchNorm1d(hidden * 2, eps=eps / 10, momentum=0.2),
        nn.Dropout(p=p * 2),
        nn.Linear(hidden * 2, hidden // 3 + 1, bias=False),
        nn.Linear(hidden // 3 + 1, 2**2),
        nn.LeakyReLU(-0.5 + 0.6),
    )


def test_vars_and_expressions(tmp_path: Path) -> None:
    path = write(tmp_path, "vars.yaml", VARS)
    assert_same_module(build(path), seeded(vars_ref))


def test_expressions_allow_no_attribute_access_or_calls(cli: Cli, tmp_path: Path) -> None:
    for bad in ("Linear(4, d.__class__)", "Linear(4, len([1]))", "Linear(4, __import__('os'))"):
        path = write(tmp_path, "x.yaml", f"netinspect: 1\nvars: {{d: 4}}\nmodel:\n  - {bad}\n")
        result = cli.run("tree", path, code=3)
        assert "x.yaml:4:" in result.stderr and "Traceback" not in result.stderr


NAMED = """\
netinspect: 1
model:
  sequential:
    features:
      sequential:
        conv: Conv2d(1, 4, kernel_size=3, padding=1)
        act: ReLU
        pool: MaxPool2d(2)
    flatten: Flatten
    classifier:
      - Linear(4 * 4 * 4, 10)
"""


def named_ref() -> nn.Module:
    features = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 4, kernel_size=3, padding=1), act=nn.ReLU(), pool=nn.MaxPool2d(2)))
    return nn.Sequential(OrderedDict(features=features, flatten=nn.Flatten(), classifier=nn.Sequential(nn.Linear(4 * 4 * 4, 10))))


def test_named_sequential_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "named.yaml", NAMED)
    mine = build(path)
    assert_same_module(mine, seeded(named_ref))
    assert list(mine.state_dict()) == ["features.conv.weight", "features.conv.bias", "classifier.0.weight", "classifier.0.bias"]


# ------------------------------------------------------------------------------------------------ init rules scoped to a node

SCOPED = """\
netinspect: 1
model:
  sequential:
    encoder:
      sequential:
        - Linear(4, 8)
        - ReLU
        - Linear(8, 8)
      init:
        - target: "2"
          weight: constant(3)
          bias: zeros
    decoder:
      sequential:
        - Linear(8, 4)
      init:
        - weight: "uniform(-1, 1)"
    head: Linear(4, 1)
init:
  - types: [Linear]
    target: "head"
    weight: ones
"""


def test_node_init_rules_are_scoped(tmp_path: Path) -> None:
    path = write(tmp_path, "scoped.yaml", SCOPED)
    torch.manual_seed(0)
    ref = nn.Sequential(
        OrderedDict(
            encoder=nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8)),
            decoder=nn.Sequential(nn.Linear(8, 4)),
            head=nn.Linear(4, 1),
        )
    )
    with torch.no_grad():
        nn.init.ones_(ref.head.weight)
        nn.init.constant_(ref.encoder[2].weight, 3)
        nn.init.zeros_(ref.encoder[2].bias)
        nn.init.uniform_(ref.decoder[0].weight, -1, 1)
    mine = build(path)
    assert_same_module(mine, ref)
    untouched = seeded(lambda: nn.Sequential(nn.Linear(4, 8)))
    assert torch.equal(mine.encoder[0].weight, untouched[0].weight)  # the first default init, unchanged


def test_node_rule_target_is_relative_to_the_node(cli: Cli, tmp_path: Path) -> None:
    text = SCOPED.replace('target: "2"', 'target: "head"')
    path = write(tmp_path, "scoped.yaml", text)
    result = cli.run("tree", path, code=3)
    line = next(i for i, s in enumerate(text.splitlines()) if 'target: "head"' in s) + 1
    assert f"scoped.yaml:{line}:" in result.stderr  # 'head' is no module under encoder


# ------------------------------------------------------------------------------------------------ seeds


def test_seed_key_and_flag(tmp_path: Path) -> None:
    path = write(tmp_path, "seed.yaml", "netinspect: 1\nseed: 7\nmodel: ['Linear(4, 8)', ReLU, 'Linear(8, 1)']\n")
    assert_state_equal(build(path).state_dict(), seeded(d2l_mlp, 7).state_dict())
    assert_state_equal(build(path, seed=3).state_dict(), seeded(d2l_mlp, 3).state_dict())
    assert_state_equal(build("mlp", seed=123456789).state_dict(), seeded(d2l_mlp, 123456789).state_dict())


# ------------------------------------------------------------------------------------------------ devices


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_absent_exits_4_with_one_line(tmp_path: Path) -> None:
    result = run_process("params", "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 4
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cuda" in lines[0] and "error" in lines[0]


def test_refuses_what_the_device_cannot_hold(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes are known before allocating: alexnet's float32 parameters, as torch counts them."""
    with torch.device("meta"):
        ref = R.REFERENCES["alexnet"]()
    need = sum(t.numel() * t.element_size() for t in ref.parameters()) + sum(t.numel() * t.element_size() for t in ref.buffers())
    monkeypatch.setenv("NETINSPECT_AVAILABLE_BYTES", str(need - 1))
    result = cli.run("params", "alexnet", code=4)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{need:,}" in lines[0] and "--device meta" in lines[0]
    monkeypatch.setenv("NETINSPECT_AVAILABLE_BYTES", str(need))
    assert cli.json("params", "alexnet", "--device", "meta")["totals"]["bytes"] == need


def test_unknown_device_is_usage_error(cli: Cli) -> None:
    result = cli.run("params", "--device", "tpu", code=2)
    assert len(result.stderr.strip().splitlines()) == 1


@cuda
@needs_cuda
def test_cuda_params_show_cuda0(cli: Cli) -> None:
    doc = cli.json("params", "--device", "cuda")
    assert doc["device"] == "cuda:0"
    assert {r["device"] for r in doc["parameters"]} == {"cuda:0"}
    assert {e["device"] for e in cli.json("state-dict", "--device", "cuda:0")["entries"]} == {"cuda:0"}


@cuda
@needs_cuda
@pytest.mark.parametrize("name", ["mlp", "tied", "mlp-bn", "tinylm", "lenet", "d2l-custom-init"])
def test_cuda_values_equal_torch_on_cuda(name: str) -> None:
    torch.manual_seed(0)
    with torch.device("cuda"):
        ref = R.REFERENCES[name]()
        if name == "d2l-custom-init":
            for m in ref.modules():
                if type(m) is nn.Linear:
                    nn.init.uniform_(m.weight, -10, 10)
                    m.weight.data *= m.weight.data.abs() >= 5
    mine = build(name, device="cuda")
    assert all(t.is_cuda for t in mine.state_dict().values())
    assert_same_module(mine, ref)


@cuda
@needs_cuda
def test_cuda_forward_equals_torch(cli: Cli) -> None:
    torch.manual_seed(0)
    with torch.device("cuda"):
        ref = R.REFERENCES["rgnet"]()
        out = ref(torch.rand(2, 4))
    assert cli.json("forward", "rgnet", "--device", "cuda")["output"] == out.tolist()


@cuda
@needs_cuda
def test_cuda_tie_survives(cli: Cli) -> None:
    mine = build("tinylm", device="cuda")
    assert mine.head.weight is mine.embed.weight
    assert [g["cause"] for g in cli.json("shared", "tinylm", "--device", "cuda")["groups"]] == ["tie"]


@cuda
@needs_cuda
def test_cuda_missing_index_exits_4(cli: Cli) -> None:
    bad = f"cuda:{torch.cuda.device_count()}"
    result = cli.run("params", "--device", bad, code=4)
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_scheme_that_misfits_many_parameters_is_one_error_per_kind(cli: Cli, tmp_path: Path) -> None:
    """xavier over 1-D weights: one line names the first path and how many more, not one line each."""
    text = "netinspect: 1\nblocks:\n  cell:\n    body: [LayerNorm(4), 'Linear(4, 4)']\n"
    text += "model:\n  - use: cell\n    repeat: 5\n  - LayerNorm(6)\n"
    path = write(tmp_path, "norms.yaml", text)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(nn.LayerNorm(4).weight)  # torch refuses the same call
    result = cli.run("init", path, "--scheme", "xavier", code=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert "('0.0.weight', shape [4], and 4 more parameters like it)" in lines[0]
    assert "('5.weight', shape [6])" in lines[1] and "more" not in lines[1]
    assert all("hint: restrict the rule with types: [Linear]" in line for line in lines)
    cli.run("init", path, "--scheme", "xavier", "--types", "Linear")  # the hint works


FOLDS = """\
netinspect: 1
shared:
  proj: Linear(4, 4)
blocks:
  own:
    body: ["Linear(4, 4)", ReLU]
  reusing:
    body: [{ref: proj}, ReLU]
model:
  - use: own
    repeat: 3
    name: "own{i}"
  - use: reusing
    repeat: 3
    name: "reuse{i}"
  - use: own
    repeat: 3
    name: "frozen{i}"
    frozen: true
  - use: own
    repeat: 2
    name: "pair{i}"
"""


def test_tree_folds_only_siblings_that_are_alike(cli: Cli, tmp_path: Path) -> None:
    """Runs of 3+ siblings fold when their structure, counts, sharing and markers agree: cells that
    reuse one module, or frozen cells, never fold with cells that own trainable ones."""
    path = write(tmp_path, "folds.yaml", FOLDS)

    def ref() -> nn.Module:
        proj = nn.Linear(4, 4)
        cells = OrderedDict((f"own{i}", nn.Sequential(nn.Linear(4, 4), nn.ReLU())) for i in range(3))
        cells.update((f"reuse{i}", nn.Sequential(proj, nn.ReLU())) for i in range(3))
        cells.update((f"frozen{i}", nn.Sequential(nn.Linear(4, 4), nn.ReLU()).requires_grad_(False)) for i in range(3))
        cells.update((f"pair{i}", nn.Sequential(nn.Linear(4, 4), nn.ReLU())) for i in range(2))
        return nn.Sequential(cells)

    want = seeded(ref)
    assert_same_module(build(path), want)
    lines = cli.run("tree", path).stdout.splitlines()
    each = unique_numel(want.own0)
    assert f"├── (own0 … own2): ×3 identical Sequential, {each} params each" in lines
    assert f"├── (reuse0 … reuse2): ×3 identical Sequential, {each} params each" in lines
    assert f"├── (frozen0 … frozen2): ×3 identical Sequential, {each} params each" in lines
    assert any(line.endswith("[shared: also at reuse1.0, reuse2.0]") for line in lines)
    assert any(line.endswith("[frozen]") for line in lines)
    assert sum("(pair" in line for line in lines) == 2  # two alike do not fold
    assert f"· {unique_numel(want)} params" in lines[0]
    expanded = cli.run("tree", path, "--expand").stdout
    assert "×" not in expanded and all(f"({name})" in expanded for name, _ in want.named_children())
