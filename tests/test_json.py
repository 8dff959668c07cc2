"""``--json``: one document on stdout with the SPEC §3 fields (more are allowed) and the right types;
errors as JSON lines on stderr. The figures are checked against plain torch computed here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import reference_models as R
import torch
from conftest import Cli, by_path_numel, one_json_document, run_process, seeded, unique_numel, write
from torch import nn

DEVICE = re.compile(r"(cpu|meta|mps|cuda:\d+)\Z")

TREE_FIELDS = {"model", "device", "root"}
NODE_FIELDS = {"name", "path", "type", "params_own", "params_total", "children"}
PARAMS_FIELDS = {"model", "device", "parameters", "totals"}
PARAM_ROW_FIELDS = {"name", "shape", "dtype", "device", "requires_grad", "numel", "shared_with"}
PARAMS_TOTALS = {"unique", "by_path", "trainable", "bytes"}
STATE_FIELDS = {"model", "entries"}
STATE_ENTRY_FIELDS = {"key", "shape", "dtype", "device", "kind"}
SHARED_FIELDS = {"model", "groups", "totals"}
SHARED_GROUP_FIELDS = {"paths", "shape", "numel", "cause"}
SHARED_TOTALS = {"unique", "by_path"}
INIT_FIELDS = {"model", "parameters"}
INIT_ROW_FIELDS = {"name", "shape", "scheme", "mean", "std", "min", "max", "zero_fraction", "expected_std"}
FORWARD_FIELDS = {"model", "input_shape", "output_shape", "output", "modules"}
FORWARD_MODULE_FIELDS = {"path", "type", "output_shape"}
ERROR_FIELDS = {"file", "line", "column", "message", "hint"}


def has_fields(obj: Any, fields: set[str]) -> None:
    assert isinstance(obj, dict), obj
    missing = fields - set(obj)
    assert not missing, f"missing fields {sorted(missing)} in {sorted(obj)}"


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_shape(x: Any) -> bool:
    return isinstance(x, list) and all(is_int(d) and d >= 0 for d in x)


def is_dtype(x: Any) -> bool:
    return isinstance(x, str) and not x.startswith("torch.") and isinstance(getattr(torch, x, None), torch.dtype)


def is_device(x: Any) -> bool:
    return isinstance(x, str) and DEVICE.match(x) is not None


def is_number_or_null(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def nodes_of(node: dict) -> list[dict]:
    out = [node]
    for child in node["children"]:
        out.extend(nodes_of(child))
    return out


# ------------------------------------------------------------------------------------------------ tree


@pytest.mark.parametrize("model", ["mlp", "tied", "rgnet", "tinylm", "mlp-bn"])
def test_tree_json(cli: Cli, model: str) -> None:
    ref = seeded(R.REFERENCES[model])
    doc = cli.json("tree", model)
    has_fields(doc, TREE_FIELDS)
    assert doc["model"] == model and doc["device"] == "cpu"
    nodes = nodes_of(doc["root"])
    for node in nodes:
        has_fields(node, NODE_FIELDS)
        assert isinstance(node["name"], str) and isinstance(node["path"], str) and isinstance(node["type"], str)
        assert is_int(node["params_own"]) and is_int(node["params_total"])
        assert isinstance(node["children"], list)
    modules = list(ref.named_modules(remove_duplicate=False))
    assert [n["path"] for n in nodes] == [p for p, _ in modules]  # a reused module appears at each path
    assert [n["type"] for n in nodes] == [type(m).__name__ for _, m in modules]
    assert [n["name"] for n in nodes] == [p.rpartition(".")[2] for p, _ in modules]
    for node, (_, m) in zip(nodes, modules, strict=True):
        assert node["params_total"] == unique_numel(m)  # each Parameter of the subtree once
    assert doc["root"]["path"] == ""
    assert doc["root"]["params_total"] == unique_numel(ref)


def test_tree_json_on_meta(cli: Cli) -> None:
    doc = cli.json("tree", "llama-7b", "--device", "meta")
    assert doc["device"] == "meta"
    assert doc["root"]["params_total"] == R.EXPECTED_UNIQUE["llama-7b"]


# ------------------------------------------------------------------------------------------------ params


@pytest.mark.parametrize("model", ["mlp", "tied", "tinylm", "mlp-bn"])
def test_params_json(cli: Cli, model: str) -> None:
    ref = seeded(R.REFERENCES[model])
    doc = cli.json("params", model)
    has_fields(doc, PARAMS_FIELDS)
    assert doc["device"] == "cpu"
    named = list(ref.named_parameters(remove_duplicate=False))
    assert len(doc["parameters"]) == len(named)
    groups: dict[int, list[str]] = {}
    for name, p in named:
        groups.setdefault(id(p), []).append(name)
    for row, (name, p) in zip(doc["parameters"], named, strict=True):
        has_fields(row, PARAM_ROW_FIELDS)
        assert row["name"] == name
        assert is_shape(row["shape"]) and row["shape"] == list(p.shape)
        assert is_dtype(row["dtype"]) and row["dtype"] == dtype_name(p.dtype)
        assert is_device(row["device"]) and row["device"] == str(p.device)
        assert row["requires_grad"] is p.requires_grad
        assert is_int(row["numel"]) and row["numel"] == p.numel()
        assert isinstance(row["shared_with"], list) and all(isinstance(s, str) for s in row["shared_with"])
        assert sorted(row["shared_with"]) == sorted(q for q in groups[id(p)] if q != name)
    totals = doc["totals"]
    has_fields(totals, PARAMS_TOTALS)
    assert all(is_int(totals[k]) for k in PARAMS_TOTALS)
    uniq = {id(p): p for _, p in named}
    assert totals["unique"] == unique_numel(ref)
    assert totals["by_path"] == by_path_numel(ref)
    assert totals["trainable"] == sum(p.numel() for p in uniq.values() if p.requires_grad)
    assert totals["bytes"] == sum(p.numel() * p.element_size() for p in uniq.values())


def test_params_json_module(cli: Cli) -> None:
    ref = seeded(R.REFERENCES["rgnet"])
    sub = ref.get_submodule("0.block1")
    doc = cli.json("params", "rgnet", "--module", "0.block1")
    assert [(r["name"], r["shape"]) for r in doc["parameters"]] == [(n, list(p.shape)) for n, p in sub.named_parameters()]
    assert doc["totals"]["unique"] == unique_numel(sub)


def test_params_json_meta_device(cli: Cli) -> None:
    doc = cli.json("params", "gpt2-xl", "--device", "meta")
    assert doc["device"] == "meta"
    assert {r["device"] for r in doc["parameters"]} == {"meta"}
    assert doc["totals"]["unique"] == R.EXPECTED_UNIQUE["gpt2-xl"]
    assert doc["totals"]["by_path"] == R.EXPECTED_BY_PATH["gpt2-xl"]
    assert doc["totals"]["bytes"] == 4 * R.EXPECTED_UNIQUE["gpt2-xl"]
    doc = cli.json("params", "llama-7b", "--device", "meta")
    assert {r["dtype"] for r in doc["parameters"]} == {"bfloat16"}
    assert doc["totals"]["bytes"] == 2 * R.EXPECTED_UNIQUE["llama-7b"]


# ------------------------------------------------------------------------------------------------ state-dict


@pytest.mark.parametrize("model", ["mlp", "tied", "mlp-bn", "tinylm"])
def test_state_dict_json(cli: Cli, model: str) -> None:
    ref = seeded(R.REFERENCES[model])
    sd = ref.state_dict(keep_vars=True)
    doc = cli.json("state-dict", model)
    has_fields(doc, STATE_FIELDS)
    assert len(doc["entries"]) == len(sd)
    for entry, (key, t) in zip(doc["entries"], sd.items(), strict=True):
        has_fields(entry, STATE_ENTRY_FIELDS)
        assert entry["key"] == key
        assert is_shape(entry["shape"]) and entry["shape"] == list(t.shape)
        assert is_dtype(entry["dtype"]) and entry["dtype"] == dtype_name(t.dtype)
        assert is_device(entry["device"]) and entry["device"] == "cpu"
        assert entry["kind"] == ("parameter" if isinstance(t, nn.Parameter) else "buffer")
        assert "values" not in entry or entry["values"] is None


def test_state_dict_json_values_and_key(cli: Cli) -> None:
    ref = seeded(R.REFERENCES["mlp-bn"])
    sd = ref.state_dict()
    doc = cli.json("state-dict", "mlp-bn", "--values")
    for entry, (key, t) in zip(doc["entries"], sd.items(), strict=True):
        assert entry["key"] == key and entry["values"] == t.tolist()
    one = cli.json("state-dict", "mlp-bn", "--key", "1.num_batches_tracked")
    assert len(one["entries"]) == 1
    entry = one["entries"][0]
    assert entry["key"] == "1.num_batches_tracked" and entry["kind"] == "buffer" and entry["dtype"] == "int64"
    assert entry["shape"] == [] and entry["values"] == sd["1.num_batches_tracked"].tolist() and is_int(entry["values"])


def test_state_dict_json_meta(cli: Cli) -> None:
    doc = cli.json("state-dict", "llama-70b", "--device", "meta")
    assert {e["device"] for e in doc["entries"]} == {"meta"}
    assert {e["dtype"] for e in doc["entries"]} == {"bfloat16"}


# ------------------------------------------------------------------------------------------------ shared


@pytest.mark.parametrize(("model", "cause"), [("tied", "module"), ("tinylm", "tie"), ("mlp", None)])
def test_shared_json(cli: Cli, model: str, cause: str | None) -> None:
    ref = seeded(R.REFERENCES[model])
    doc = cli.json("shared", model)
    has_fields(doc, SHARED_FIELDS)
    has_fields(doc["totals"], SHARED_TOTALS)
    assert doc["totals"]["unique"] == unique_numel(ref) and is_int(doc["totals"]["unique"])
    assert doc["totals"]["by_path"] == by_path_numel(ref) and is_int(doc["totals"]["by_path"])
    params = dict(ref.named_parameters(remove_duplicate=False))
    for g in doc["groups"]:
        has_fields(g, SHARED_GROUP_FIELDS)
        assert isinstance(g["paths"], list) and len(g["paths"]) >= 2
        assert all(params[p] is params[g["paths"][0]] for p in g["paths"])
        assert is_shape(g["shape"]) and g["shape"] == list(params[g["paths"][0]].shape)
        assert is_int(g["numel"]) and g["numel"] == params[g["paths"][0]].numel()
        assert g["cause"] == cause
    if cause is None:
        assert doc["groups"] == []


# ------------------------------------------------------------------------------------------------ init


def test_init_json(cli: Cli) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    nn.init.kaiming_normal_(net[0].weight, nonlinearity="relu")
    doc = cli.json("init", "--scheme", "kaiming_normal(nonlinearity='relu')", "--target", "0")
    has_fields(doc, INIT_FIELDS)
    rows = doc["parameters"]
    assert [r["name"] for r in rows] == [n for n, _ in net.named_parameters()]
    for row, (_, p) in zip(rows, net.named_parameters(), strict=True):
        has_fields(row, INIT_ROW_FIELDS)
        assert is_shape(row["shape"]) and row["shape"] == list(p.shape)
        for k in ("mean", "std", "min", "max", "zero_fraction", "expected_std"):
            assert is_number_or_null(row[k]), (k, row[k])
        assert row["scheme"] is None or isinstance(row["scheme"], str)
        assert row["min"] == p.min().item() and row["max"] == p.max().item()
        assert row["mean"] == pytest.approx(p.double().mean().item(), rel=1e-6, abs=1e-9)
    by_name = {r["name"]: r for r in rows}
    assert "kaiming_normal" in by_name["0.weight"]["scheme"]
    assert by_name["0.weight"]["expected_std"] == pytest.approx((2.0 / 4) ** 0.5)
    for name in ("0.bias", "2.weight", "2.bias"):
        assert by_name[name]["scheme"] is None and by_name[name]["expected_std"] is None
    assert by_name["2.bias"]["std"] is None and net[2].bias.numel() == 1  # one value: no std; null, not NaN


def test_init_json_tied_counts_each_parameter(cli: Cli) -> None:
    ref = seeded(R.REFERENCES["tied"])
    rows = cli.json("init", "tied")["parameters"]
    names = [r["name"] for r in rows]
    every = [n for n, _ in ref.named_parameters(remove_duplicate=False)]
    assert set(names) <= set(every)
    params = dict(ref.named_parameters(remove_duplicate=False))
    assert {id(params[n]) for n in names} == {id(p) for p in ref.parameters()}


# ------------------------------------------------------------------------------------------------ forward


@pytest.mark.parametrize("model", ["mlp", "rgnet", "lenet"])
def test_forward_json(cli: Cli, model: str) -> None:
    shape = {"lenet": [1, 1, 28, 28]}.get(model, [2, 4])
    net = seeded(R.REFERENCES[model])
    out = net(torch.rand(shape))
    doc = cli.json("forward", model)
    has_fields(doc, FORWARD_FIELDS)
    assert doc["input_shape"] == shape
    assert is_shape(doc["output_shape"]) and doc["output_shape"] == list(out.shape)
    assert doc["output"] == out.tolist()
    paths = [m["path"] for m in doc["modules"]]
    for m in doc["modules"]:
        has_fields(m, FORWARD_MODULE_FIELDS)
        assert is_shape(m["output_shape"])
    # every module that ran, with the shape torch gives
    shapes: dict[str, list[int]] = {}
    names = {id(m): p for p, m in net.named_modules()}

    def record(mod: nn.Module, args: Any, output: torch.Tensor) -> None:
        shapes.setdefault(names[id(mod)], list(output.shape))

    hooks = [m.register_forward_hook(record) for m in net.modules()]
    net(torch.rand(shape))
    for h in hooks:
        h.remove()
    assert sorted(paths) == sorted(shapes)
    assert {m["path"]: m["output_shape"] for m in doc["modules"]} == shapes


def test_forward_json_meta_shapes_only(cli: Cli) -> None:
    cpu = cli.json("forward", "lenet")
    meta = cli.json("forward", "lenet", "--device", "meta")
    has_fields(meta, FORWARD_FIELDS)
    assert meta["output_shape"] == cpu["output_shape"]
    assert [m["output_shape"] for m in meta["modules"]] == [m["output_shape"] for m in cpu["modules"]]
    assert meta["output"] is None


def test_forward_json_input_flag(cli: Cli) -> None:
    net = seeded(R.REFERENCES["mlp"])
    out = net(torch.rand(5, 4))
    doc = cli.json("forward", "--input", "5,4")
    assert doc["input_shape"] == [5, 4] and doc["output"] == out.tolist()


# ------------------------------------------------------------------------------------------------ others


def test_configs_schemes_validate_json(cli: Cli) -> None:
    configs = cli.json("configs")
    assert isinstance(configs, dict)
    schemes = cli.json("schemes")
    text = json.dumps(schemes)
    for name in ("xavier_uniform", "kaiming_normal", "mask_abs_below", "trunc_normal"):
        assert name in text
    assert isinstance(cli.json("validate", "mlp"), dict)


@pytest.mark.slow
def test_json_from_a_real_process(tmp_path: Path) -> None:
    """The console entry point: stdout is the one document, stderr is empty."""
    result = run_process("params", "tied", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    doc = one_json_document(result.stdout)
    assert doc["totals"]["unique"] == 121 and doc["totals"]["by_path"] == 193


# ------------------------------------------------------------------------------------------------ errors


def error_lines(stderr: str) -> list[dict]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no error on stderr"
    out = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            pytest.fail(f"stderr line is not JSON: {line!r}\n--- stderr:\n{stderr}")
        has_fields(doc, {"error"})
        has_fields(doc["error"], ERROR_FIELDS)
        e = doc["error"]
        assert isinstance(e["message"], str) and e["message"]
        assert e["hint"] is None or isinstance(e["hint"], str)
        assert e["file"] is None or isinstance(e["file"], str)
        assert e["line"] is None or is_int(e["line"])
        assert e["column"] is None or is_int(e["column"])
        out.append(e)
    return out


def test_spec_errors_are_json_lines(cli: Cli, tmp_path: Path) -> None:
    text = "netinspect: 1\nmodel:\n  - Linaer(4, 8)\n  - ReLU\n  - Linear(8, 2, bais=True)\n"
    path = write(tmp_path, "bad.yaml", text)
    result = cli.run("tree", path, "--json", code=3)
    assert result.stdout == ""
    errors = error_lines(result.stderr)
    assert len(errors) == 2
    lines = text.splitlines()
    for e, needle in zip(errors, ["Linaer", "bais"], strict=True):
        assert e["file"] is not None and Path(e["file"]).name == "bad.yaml"
        row = next(i for i, line in enumerate(lines) if needle in line)
        assert e["line"] == row + 1
        assert e["column"] == lines[row].index("Linear(" if needle == "bais" else needle) + 1
    assert "Linear" in (errors[0]["hint"] or "")


def test_validate_reports_every_error(cli: Cli, tmp_path: Path) -> None:
    """SPEC: validate prints every error found (here an unknown name and an unknown class)."""
    text = "netinspect: 1\nmodel:\n  - Linaer(4, 8)\n  - ReLU\n  - Linear(8, q)\n"
    path = write(tmp_path, "bad.yaml", text)
    result = cli.run("validate", path, "--json", code=3)
    errors = error_lines(result.stderr)
    assert sorted(e["line"] for e in errors) == [3, 5], errors


def test_usage_error_is_json(cli: Cli) -> None:
    result = cli.run("params", "no-such-config", "--json", code=2)
    assert result.stdout == ""
    assert len(error_lines(result.stderr)) == 1


@pytest.mark.parametrize("flags", [("--seed", "abc"), ("--bogus",), ("--depth", "-1")])
def test_bad_flag_value_is_json(flags: tuple[str, ...]) -> None:
    # option parsing happens before any command code: the entry point turns it into JSON
    command = "tree" if "--depth" in flags else "params"
    result = run_process(command, "--json", *flags)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(error_lines(result.stderr)) == 1


def test_meta_refusals_are_json(cli: Cli) -> None:
    refusals = (
        ("init", "--device", "meta"),
        ("state-dict", "--device", "meta", "--values"),
        ("state-dict", "--device", "meta", "--key", "0.weight"),
    )
    for args in refusals:
        result = cli.run(*args, "--json", code=2)
        assert result.stdout == ""
        assert len(error_lines(result.stderr)) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_json(cli: Cli) -> None:
    result = cli.run("params", "--device", "cuda", "--json", code=4)
    assert result.stdout == ""
    assert len(error_lines(result.stderr)) == 1


def test_forward_failure_is_json(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "fwd.yaml", "netinspect: 1\ninput: [2, 4]\nmodel:\n  - Linear(4, 8)\n  - Linear(4, 8)\n")
    result = cli.run("forward", path, "--json", code=1)
    assert result.stdout == ""
    (e,) = error_lines(result.stderr)
    assert e["line"] == 5  # the layer that failed
