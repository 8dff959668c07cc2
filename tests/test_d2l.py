"""Every cell of the D2L notebook "Parameter Management" (shared/seed/d2l-parameter-management.txt),
done with netinspect and compared with what plain torch computes here for the same module.

netinspect reproduces PyTorch's default init: ``torch.manual_seed(seed)`` (0 by default), the
equivalent construction, the init rules in order, and for ``forward`` a ``torch.rand`` input
drawn right after. So every value below is compared bit for bit.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import reference_models as R
import torch
from conftest import Cli, assert_state_equal, by_path_numel, d2l_mlp, seeded, tie_groups, unique_numel, write
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

# ------------------------------------------------------------------------------------------------
# the notebook's code, verbatim where it builds or changes a module


# the notebook's rgnet and tied nets are the reference builders of configs/rgnet.yaml and tied.yaml
d2l_rgnet = R.rgnet
d2l_tied = R.tied


def init_normal(m: nn.Module) -> None:
    if type(m) is nn.Linear:
        nn.init.normal_(m.weight, mean=0, std=0.01)
        nn.init.zeros_(m.bias)


def init_constant(m: nn.Module) -> None:
    if type(m) is nn.Linear:
        nn.init.constant_(m.weight, 1)
        nn.init.zeros_(m.bias)


def xavier(m: nn.Module) -> None:
    if type(m) is nn.Linear:
        nn.init.xavier_uniform_(m.weight)


def init_42(m: nn.Module) -> None:
    if type(m) is nn.Linear:
        nn.init.constant_(m.weight, 42)


def my_init(m: nn.Module) -> None:
    if type(m) is nn.Linear:
        nn.init.uniform_(m.weight, -10, 10)
        m.weight.data *= m.weight.data.abs() >= 5


def saved_state(cli: Cli, tmp_path: Path, *args: object, name: str = "state.pt") -> dict[str, torch.Tensor]:
    """``netinspect init ARGS --save FILE.pt`` read back with ``torch.load``."""
    target = tmp_path / name
    cli.run("init", *args, "--save", target)
    assert target.exists()
    return torch.load(target, weights_only=True)


def values_of(doc: dict) -> OrderedDict:
    return OrderedDict((e["key"], e["values"]) for e in doc["entries"])


# ------------------------------------------------------------------------------------------------
# In [2]: net = nn.Sequential(nn.Linear(4,8), nn.ReLU(), nn.Linear(8,1)); X = torch.rand(2, 4); net(X)


def test_cell2_forward_output_equals_torch(cli: Cli) -> None:
    net = seeded(d2l_mlp)
    X = torch.rand(size=(2, 4))
    expected = net(X)
    doc = cli.json("forward")  # MODEL left out: the built-in mlp
    assert doc["input_shape"] == [2, 4]
    assert doc["output_shape"] == list(expected.shape)
    assert doc["output"] == expected.tolist()
    text = cli.run("forward", "mlp").stdout
    assert str(expected) in text


def test_default_model_is_the_d2l_mlp(cli: Cli) -> None:
    assert cli.run("tree", "--repr").stdout == str(seeded(d2l_mlp)) + "\n"
    assert cli.json("state-dict", "--values") == cli.json("state-dict", "mlp", "--values")


# In [3]: print(net[2].state_dict())


def test_cell3_state_dict_of_net2(cli: Cli) -> None:
    net = seeded(d2l_mlp)
    expected = net[2].state_dict()
    doc = cli.json("state-dict", "--module", "2", "--values")
    assert [e["key"] for e in doc["entries"]] == list(expected)  # ['weight', 'bias']
    assert values_of(doc) == OrderedDict((k, v.tolist()) for k, v in expected.items())
    assert [e["shape"] for e in doc["entries"]] == [list(v.shape) for v in expected.values()]
    text = cli.run("state-dict", "--module", "2", "--values").stdout
    for value in expected.values():
        assert str(value) in text


# In [4]: type(net[2].bias); net[2].bias; net[2].bias.data


def test_cell4_bias_is_a_parameter_with_these_values(cli: Cli) -> None:
    net = seeded(d2l_mlp)
    assert type(net[2].bias) is nn.Parameter
    rows = {r["name"]: r for r in cli.json("params")["parameters"]}
    assert "2.bias" in rows and rows["2.bias"]["requires_grad"] is net[2].bias.requires_grad
    kinds = {e["key"]: e["kind"] for e in cli.json("state-dict")["entries"]}
    for key, t in net.state_dict(keep_vars=True).items():
        assert kinds[key] == ("parameter" if isinstance(t, nn.Parameter) else "buffer")
    # print(net[2].bias.data) -> tensor([-0.1568]) at seed 0
    assert cli.run("state-dict", "--key", "2.bias").stdout == str(net[2].bias.data) + "\n"
    assert cli.run("state-dict", "--module", "2", "--key", "bias").stdout == str(net[2].bias.data) + "\n"


# In [5], In [7]: net[2].weight.grad == None; net[0].weight.grad == None


def test_cell5_7_grad_is_none(cli: Cli) -> None:
    net = seeded(d2l_mlp)
    rows = {r["name"]: r for r in cli.json("params")["parameters"]}
    for name, p in net.named_parameters():
        assert p.grad is None
        assert rows[name]["grad"] == "none"
    text = cli.run("params").stdout
    assert "present" not in text


# In [8]: named_parameters of net[0] and of net


def test_cell8_named_parameters(cli: Cli) -> None:
    net = seeded(d2l_mlp)
    doc0 = cli.json("params", "--module", "0")
    assert [(r["name"], r["shape"]) for r in doc0["parameters"]] == [(n, list(p.shape)) for n, p in net[0].named_parameters()]
    doc = cli.json("params")
    assert [(r["name"], r["shape"]) for r in doc["parameters"]] == [(n, list(p.shape)) for n, p in net.named_parameters()]
    assert doc["totals"]["unique"] == sum(p.numel() for p in net.parameters()) == 49
    first_words = [line.split()[0] for line in cli.run("params", "--module", "0").stdout.splitlines() if line.strip()]
    for name, _ in net[0].named_parameters():
        assert name in first_words


# In [9]: net.state_dict()['2.bias'].data


def test_cell9_state_dict_key(cli: Cli) -> None:
    net = seeded(d2l_mlp)
    expected = net.state_dict()["2.bias"].data
    assert cli.run("state-dict", "--key", "2.bias").stdout.strip() == str(expected)
    doc = cli.json("state-dict", "--key", "2.bias")
    assert len(doc["entries"]) == 1
    entry = doc["entries"][0]
    assert entry["key"] == "2.bias" and entry["shape"] == [1] and entry["kind"] == "parameter"
    assert entry["values"] == expected.tolist()


# In [11], In [13]: nested blocks


def test_cell11_rgnet_forward_equals_torch(cli: Cli) -> None:
    rgnet = seeded(d2l_rgnet)
    X = torch.rand(size=(2, 4))
    expected = rgnet(X)
    doc = cli.json("forward", "rgnet")
    assert doc["output"] == expected.tolist()
    assert doc["output_shape"] == [2, 1]
    assert cli.json("params", "rgnet")["totals"]["unique"] == sum(p.numel() for p in rgnet.parameters()) == 309
    entries = cli.json("state-dict", "rgnet", "--values")["entries"]
    assert len(entries) == len(rgnet.state_dict())
    assert entries == [
        {**e, "key": k, "shape": list(v.shape), "dtype": "float32", "device": "cpu", "kind": "parameter", "values": v.tolist()}
        for e, (k, v) in zip(entries, rgnet.state_dict().items(), strict=True)
    ]


def test_cell13_print_rgnet(cli: Cli) -> None:
    rgnet = seeded(d2l_rgnet)
    assert cli.run("tree", "rgnet", "--repr").stdout == str(rgnet) + "\n"
    doc = cli.json("tree", "rgnet")
    paths: list[str] = []

    def walk(node: dict) -> None:
        paths.append(node["path"])
        for child in node["children"]:
            walk(child)

    walk(doc["root"])
    assert paths == [p for p, _ in rgnet.named_modules(remove_duplicate=False)]


# In [15]: net.apply(init_normal)


def test_cell15_init_normal(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_mlp)
    net.apply(init_normal)
    got = saved_state(cli, tmp_path, "--scheme", "normal(std=0.01)", "--bias", "zeros", "--types", "Linear")
    assert_state_equal(got, net.state_dict())
    assert torch.equal(got["0.bias"], torch.zeros(8))
    # the same as a rules file
    rules = write(tmp_path, "rules.yaml", "- types: [Linear]\n  weight: normal(mean=0, std=0.01)\n  bias: zeros\n")
    assert_state_equal(saved_state(cli, tmp_path, "--rules", rules, name="r.pt"), net.state_dict())


def test_cell15_init_report_matches_torch(cli: Cli) -> None:
    net = seeded(d2l_mlp)
    net.apply(init_normal)
    rows = {r["name"]: r for r in cli.json("init", "--scheme", "normal(std=0.01)", "--bias", "zeros", "--types", "Linear")["parameters"]}
    assert list(rows) == [n for n, _ in net.named_parameters()]
    for name, p in net.named_parameters():
        w = p.detach().double()
        row = rows[name]
        assert row["shape"] == list(p.shape)
        assert row["mean"] == pytest.approx(w.mean().item(), rel=1e-5, abs=1e-9)
        assert row["min"] == p.min().item() and row["max"] == p.max().item()
        assert row["zero_fraction"] == pytest.approx((p == 0).double().mean().item())
        if p.numel() > 1:
            assert row["std"] == pytest.approx(w.std().item(), rel=1e-5, abs=1e-9)
    assert rows["0.weight"]["expected_std"] == pytest.approx(0.01)
    assert rows["0.weight"]["scheme"] and "normal" in rows["0.weight"]["scheme"]
    assert rows["0.bias"]["scheme"] and "zeros" in rows["0.bias"]["scheme"]


# In [16]: net.apply(init_constant)


def test_cell16_init_constant(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_mlp)
    net.apply(init_constant)
    got = saved_state(cli, tmp_path, "--scheme", "constant(1)", "--bias", "zeros", "--types", "Linear")
    assert_state_equal(got, net.state_dict())
    assert got["0.weight"][0].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert_state_equal(saved_state(cli, tmp_path, "--scheme", "ones", "--bias", "zeros", name="o.pt"), net.state_dict())


# In [17]: net[0].apply(xavier); net[2].apply(init_42)


def test_cell17_per_block_init_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_mlp)
    net[0].apply(xavier)
    got = saved_state(cli, tmp_path, "--scheme", "xavier", "--target", "0", "--types", "Linear")
    assert_state_equal(got, net.state_dict())

    net = seeded(d2l_mlp)
    net[2].apply(init_42)
    got = saved_state(cli, tmp_path, "--scheme", "constant(42)", "--target", "2", name="c.pt")
    assert_state_equal(got, net.state_dict())
    assert got["2.weight"].tolist() == [[42.0] * 8]

    net = seeded(d2l_mlp)
    net[0].apply(xavier)
    net[2].apply(init_42)
    rules = write(
        tmp_path,
        "rules.yaml",
        "- {target: '0', types: [Linear], weight: xavier_uniform}\n- {target: '2', types: [Linear], weight: constant(42)}\n",
    )
    assert_state_equal(saved_state(cli, tmp_path, "--rules", rules, name="r.pt"), net.state_dict())


def test_cell17_per_block_init_config(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_mlp)
    net[0].apply(xavier)
    net[2].apply(init_42)
    assert_state_equal(saved_state(cli, tmp_path, "d2l-init"), net.state_dict())
    rows = {r["name"]: r for r in cli.json("init", "d2l-init")["parameters"]}
    fan_in, fan_out = 4, 8
    assert rows["0.weight"]["expected_std"] == pytest.approx((2.0 / (fan_in + fan_out)) ** 0.5)
    assert rows["2.weight"]["min"] == rows["2.weight"]["max"] == 42.0
    assert rows["0.bias"]["scheme"] is None and rows["0.bias"]["expected_std"] is None


# In [19]: net.apply(my_init)


def test_cell19_custom_init_config(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_mlp)
    net.apply(my_init)
    got = saved_state(cli, tmp_path, "d2l-custom-init")
    assert_state_equal(got, net.state_dict())
    w = net[0].weight.data
    assert bool(((w == 0) | (w.abs() >= 5)).all())
    rows = {r["name"]: r for r in cli.json("init", "d2l-custom-init")["parameters"]}
    for name in ("0.weight", "2.weight"):
        p = net.get_parameter(name)
        assert rows[name]["zero_fraction"] == pytest.approx((p == 0).double().mean().item())
        assert rows[name]["min"] == p.min().item() and rows[name]["max"] == p.max().item()


def test_cell19_custom_init_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_mlp)
    net.apply(my_init)
    got = saved_state(cli, tmp_path, "--scheme", "[uniform(-10, 10), mask_abs_below(5)]", "--types", "Linear")
    assert_state_equal(got, net.state_dict())
    # net[0].weight[:2]
    assert torch.equal(got["0.weight"][:2], net[0].weight.data[:2])


# In [20]: net[0].weight.data[:] += 1; net[0].weight.data[0, 0] = 42


def test_cell20_direct_edits(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_mlp)
    net.apply(my_init)
    net[0].weight.data[:] += 1
    net[0].weight.data[0, 0] = 42
    got = saved_state(cli, tmp_path, "d2l-custom-init", "--set", "0.weight[:]+=1", "--set", "0.weight[0,0]=42")
    assert_state_equal(got, net.state_dict())
    assert got["0.weight"][0, 0].item() == 42.0


def test_cell20_direct_edits_on_the_default_init(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_mlp)
    net[0].weight.data[:] += 1
    net[0].weight.data[0, 0] = 42
    got = saved_state(cli, tmp_path, "--set", "0.weight[:]+=1", "--set", "0.weight[0,0]=42")
    assert_state_equal(got, net.state_dict())
    rows = {r["name"]: r for r in cli.json("init", "--set", "0.weight[:]+=1", "--set", "0.weight[0,0]=42")["parameters"]}
    assert rows["0.weight"]["max"] == 42.0
    assert rows["0.weight"]["mean"] == pytest.approx(net[0].weight.data.double().mean().item(), rel=1e-6)


# In [21]: parameter tying


def test_cell21_tied_structure_and_counts(cli: Cli) -> None:
    net = seeded(d2l_tied)
    assert cli.run("tree", "tied", "--repr").stdout == str(net) + "\n"
    doc = cli.json("params", "tied")
    assert [r["name"] for r in doc["parameters"]] == [n for n, _ in net.named_parameters(remove_duplicate=False)]
    assert doc["totals"]["unique"] == unique_numel(net) == 121
    assert doc["totals"]["by_path"] == by_path_numel(net) == 193
    rows = {r["name"]: r for r in doc["parameters"]}
    for group in tie_groups(net):
        for name in group:
            assert sorted(rows[name]["shared_with"]) == sorted(g for g in group if g != name)
    shared = cli.json("shared", "tied")
    assert sorted(sorted(g["paths"]) for g in shared["groups"]) == sorted(sorted(g) for g in tie_groups(net))
    assert {g["cause"] for g in shared["groups"]} == {"module"}
    assert shared["totals"] == {**shared["totals"], "unique": 121, "by_path": 193}
    state = cli.json("state-dict", "tied")
    assert [e["key"] for e in state["entries"]] == list(net.state_dict())
    assert len(state["entries"]) == len(net.state_dict()) == 8
    assert len(list(net.named_parameters())) == 6


def test_cell21_tied_values_and_forward(cli: Cli) -> None:
    net = seeded(d2l_tied)
    X = torch.rand(size=(2, 4))
    expected = net(X)
    assert cli.json("forward", "tied")["output"] == expected.tolist()
    got = values_of(cli.json("state-dict", "tied", "--values"))
    assert got == OrderedDict((k, v.tolist()) for k, v in net.state_dict().items())
    assert got["2.weight"][0] == got["4.weight"][0]


def test_cell21_edit_through_one_path_shows_at_the_other(cli: Cli, tmp_path: Path) -> None:
    net = seeded(d2l_tied)
    net[2].weight.data[0, 0] = 100
    assert bool((net[2].weight.data[0] == net[4].weight.data[0]).all())
    got = saved_state(cli, tmp_path, "tied", "--set", "2.weight[0,0]=100")
    assert_state_equal(got, net.state_dict())
    assert got["4.weight"][0, 0].item() == 100.0
    # torch.save keeps both keys, sharing storage
    assert got["2.weight"].untyped_storage().data_ptr() == got["4.weight"].untyped_storage().data_ptr()
    # and read back through --weights: the value shows under 4.weight
    doc = cli.json("state-dict", "tied", "--weights", tmp_path / "state.pt", "--values")
    assert values_of(doc) == OrderedDict((k, v.tolist()) for k, v in net.state_dict().items())
    assert cli.run("state-dict", "tied", "--weights", tmp_path / "state.pt", "--key", "4.weight").stdout.strip() == str(net[4].weight.data)


def test_cell21_shared_module_is_initialised_once(cli: Cli, tmp_path: Path) -> None:
    """net.apply(f) visits the shared Linear once; so does an init rule."""
    net = seeded(d2l_tied)

    def uniform(m: nn.Module) -> None:
        if type(m) is nn.Linear:
            nn.init.uniform_(m.weight, -1, 1)

    net.apply(uniform)
    got = saved_state(cli, tmp_path, "tied", "--scheme", "uniform(-1, 1)", "--types", "Linear")
    assert_state_equal(got, net.state_dict())


# --save round trips


def test_save_writes_nothing_when_the_command_fails(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "x.pt"
    result = cli.run("init", "--set", "9.weight[0,0]=1", "--save", target, code=2)
    assert "9.weight" in result.stderr
    assert list(tmp_path.iterdir()) == []
    result = cli.run("init", "--save", tmp_path / "no-such-dir" / "x.pt", code=None)
    assert result.exit_code != 0 and not (tmp_path / "no-such-dir").exists()


@pytest.mark.parametrize("model", ["mlp", "tied", "mlp-bn"])
def test_save_pt_round_trip(cli: Cli, tmp_path: Path, model: str) -> None:
    ref = seeded(R.REFERENCES[model])
    got = saved_state(cli, tmp_path, model)
    assert_state_equal(got, ref.state_dict())
    # loads into the plain-torch module
    fresh = seeded(R.REFERENCES[model], seed=1)
    fresh.load_state_dict(got)
    assert_state_equal(fresh.state_dict(), ref.state_dict())


@pytest.mark.parametrize("model", ["mlp", "tied", "mlp-bn", "tinylm"])
def test_save_safetensors_round_trip(cli: Cli, tmp_path: Path, model: str) -> None:
    ref = seeded(R.REFERENCES[model])
    expected = ref.state_dict()
    target = tmp_path / "w.safetensors"
    cli.run("init", model, "--save", target)
    tensors = load_file(str(target))
    with safe_open(str(target), framework="pt") as f:
        metadata = f.metadata() or {}
    groups = tie_groups(ref)
    # each tied tensor stored once, under its first path
    first_paths = {g[0] for g in groups}
    others = {p for g in groups for p in g[1:]}
    sd_groups: dict[int, list[str]] = {}
    for k, v in ref.state_dict(keep_vars=True).items():
        sd_groups.setdefault(id(v), []).append(k)
    stored_once = [g[0] for g in sd_groups.values()]
    assert sorted(tensors) == sorted(stored_once)
    assert first_paths <= set(tensors) and not (others & set(tensors))
    for k, v in tensors.items():
        assert v.dtype == expected[k].dtype and torch.equal(v, expected[k]), k
    # the other paths are in the metadata, so that loading restores them
    aliases = json.loads(metadata.get("netinspect.aliases", "{}"))
    restored = dict(tensors)
    for alias, key in aliases.items():
        restored[alias] = tensors[key]
    assert sorted(restored) == sorted(expected)
    fresh = seeded(R.REFERENCES[model], seed=1)
    fresh.load_state_dict(restored)
    assert_state_equal(fresh.state_dict(), expected)
    # and netinspect reads it back (--weights) to the same values, at a different seed
    doc = cli.json("state-dict", model, "--weights", target, "--values", "--seed", "5")
    assert values_of(doc) == OrderedDict((k, v.tolist()) for k, v in expected.items())


def test_save_after_init_is_what_init_reported(cli: Cli, tmp_path: Path) -> None:
    """Saved values are the ones after every rule ran (uniform then mask), as torch computes them."""
    net = seeded(d2l_mlp)
    net.apply(my_init)
    target = tmp_path / "c.safetensors"
    cli.run("init", "d2l-custom-init", "--save", target)
    tensors = load_file(str(target))
    for k, v in net.state_dict().items():
        assert torch.equal(tensors[k], v), k
