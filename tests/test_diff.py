"""``netinspect diff A B``: key sets, shapes, dtypes and values compared with what plain torch and
safetensors give for the same models and files; the hints for the usual reasons a checkpoint does
not load; exit 0 when equal, 1 when different."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import reference_models as R
import torch
from conftest import Cli, d2l_mlp, seeded
from safetensors.torch import load_file, save_file, save_model
from test_checkpoints import dcp_save
from torch import nn


def mlp(seed: int = 0) -> nn.Module:
    return seeded(d2l_mlp, seed)


def save(path: Path, sd: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def test_same_model_is_equal(cli: Cli) -> None:
    doc = cli.json("diff", "mlp", "mlp")
    assert doc["equal"] is True and doc["same"] == len(mlp().state_dict())
    assert doc["only_a"] == doc["only_b"] == doc["changed"] == []
    assert (
        "0 only in a · 0 only in b · 0 changed · 4 the same: equal (shapes and dtypes)" in cli.run("diff", "mlp", "mlp").stdout.splitlines()
    )


def test_two_models_as_their_state_dicts_differ(cli: Cli) -> None:
    a, b = seeded(R.REFERENCES["mlp"]).state_dict(), seeded(R.REFERENCES["tied"]).state_dict()
    doc = cli.json("diff", "mlp", "tied", code=1)
    assert doc["only_a"] == [k for k in a if k not in b]
    assert doc["only_b"] == [k for k in b if k not in a]
    changed = [k for k in a if k in b and (a[k].shape, a[k].dtype) != (b[k].shape, b[k].dtype)]
    assert [c["key"] for c in doc["changed"]] == changed
    for c in doc["changed"]:
        assert c["a"] == {"shape": list(a[c["key"]].shape), "dtype": "float32"}
        assert c["b"] == {"shape": list(b[c["key"]].shape), "dtype": "float32"}
        assert "max_abs_diff" not in c
    assert doc["same"] == sum(1 for k in a if k in b and k not in changed)
    assert doc["equal"] is False


def test_prefixed_checkpoint_hint(cli: Cli, tmp_path: Path) -> None:
    sd = mlp().state_dict()
    path = save(tmp_path / "ddp.safetensors", {f"module.{k}": v for k, v in sd.items()})
    doc = cli.json("diff", "mlp", path, code=1)
    assert doc["only_a"] == list(sd)
    assert sorted(doc["only_b"]) == sorted(load_file(str(path)))
    assert any("prefix 'module.'" in h for h in doc["hints"])
    assert any("would fail: 4 missing, 4 unexpected" in h for h in doc["hints"])


def test_tied_weight_stored_once_hint(cli: Cli, tmp_path: Path) -> None:
    """safetensors' save_model keeps one key of a tie and drops the other."""
    ref = seeded(R.REFERENCES["tinylm"])
    path = tmp_path / "tiny.safetensors"
    save_model(ref, str(path))
    kept = set(load_file(str(path)))
    dropped = [k for k in ref.state_dict() if k not in kept]
    assert len(dropped) == 1
    doc = cli.json("diff", "tinylm", path, code=1)
    assert doc["only_a"] == dropped and doc["only_b"] == [] and doc["changed"] == []
    assert any("a tied weight stored once" in h and dropped[0] in h for h in doc["hints"])


def test_transposed_and_dtype_hints(cli: Cli, tmp_path: Path) -> None:
    sd = mlp().state_dict()
    transposed = save(tmp_path / "t.safetensors", {k: v.t() if v.dim() == 2 else v for k, v in sd.items()})
    doc = cli.json("diff", "mlp", transposed, code=1)
    assert [c["key"] for c in doc["changed"]] == [k for k, v in sd.items() if v.dim() == 2]
    assert any("2 keys are transposed" in h for h in doc["hints"])
    half = save(tmp_path / "h.safetensors", {k: v.bfloat16() for k, v in sd.items()})
    doc = cli.json("diff", "mlp", half, code=1)
    assert all(c["b"]["dtype"] == "bfloat16" and c["a"]["shape"] == c["b"]["shape"] for c in doc["changed"])
    assert any("only a dtype change" in h and "--dtype bfloat16" in h for h in doc["hints"])
    assert any("would succeed" in h for h in doc["hints"])


def test_renamed_keys_hint(cli: Cli, tmp_path: Path) -> None:
    sd = mlp().state_dict()
    names = {"0.weight": "fc1.weight", "0.bias": "fc1.bias", "2.weight": "fc2.weight", "2.bias": "fc2.bias"}
    path = save(tmp_path / "renamed.safetensors", {names[k]: v for k, v in sd.items()})
    doc = cli.json("diff", "mlp", path, code=1)
    assert doc["only_a"] == list(sd) and sorted(doc["only_b"]) == sorted(names.values())
    assert any("pair one for one by shape and dtype (e.g. '0.weight' and 'fc1.weight')" in h for h in doc["hints"])


def test_values_max_abs_diff_as_torch_computes_it(cli: Cli, tmp_path: Path) -> None:
    """A model file's values are its seeded build on cpu: mlp at seed 0 is plain torch's mlp."""
    sd = mlp().state_dict()
    assert cli.json("diff", "mlp", save(tmp_path / "same.safetensors", sd), "--values")["equal"] is True
    seed1 = cli.json("diff", "mlp", save(tmp_path / "seed1.safetensors", mlp(1).state_dict()), "--values", code=1)
    assert {c["key"] for c in seed1["changed"]} == set(sd)
    edited = {k: v.clone() for k, v in sd.items()}
    edited["0.weight"][1, 2] += 0.25
    edited["2.bias"] += 1e-4
    path = save(tmp_path / "edited.safetensors", edited)
    doc = cli.json("diff", "mlp", path, "--values", code=1)
    expected = {k: float((sd[k].double() - edited[k].double()).abs().max()) for k in ("0.weight", "2.bias")}
    assert {c["key"]: c["max_abs_diff"] for c in doc["changed"]} == expected
    assert doc["same"] == 2
    doc = cli.json("diff", "mlp", path, "--values", "--atol", "0.001", code=1)
    assert [c["key"] for c in doc["changed"]] == ["0.weight"]
    assert cli.json("diff", "mlp", path, "--values", "--atol", "0.3")["equal"] is True


def test_values_nan_and_across_checkpoint_forms(cli: Cli, tmp_path: Path) -> None:
    sd = {"w": torch.tensor([1.0, math.nan, 3.0]), "n": torch.arange(4)}
    a = save(tmp_path / "a.safetensors", sd)
    folder = tmp_path / "dcp"
    dcp_save(folder, sd)
    pt = tmp_path / "b.pt"
    torch.save(sd, pt)
    for other in (folder, pt):
        assert cli.json("diff", a, other, "--values")["equal"] is True
    b = save(tmp_path / "b.safetensors", {"w": torch.tensor([1.0, 2.0, 3.0]), "n": torch.arange(4)})
    changed = cli.json("diff", a, b, "--values", code=1)["changed"]
    assert [c["key"] for c in changed] == ["w"] and changed[0]["max_abs_diff"] is None  # infinite: JSON null
    assert "inf" in cli.run("diff", a, b, "--values", code=1).stdout


def test_model_side_is_built_on_meta_unless_values(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """70B parameters compare key by key without memory; their values would need 128 GiB."""
    monkeypatch.setenv("NETINSPECT_AVAILABLE_BYTES", str(2**30))
    doc = cli.json("diff", "llama-70b", "llama-70b")
    assert doc["equal"] is True and doc["same"] == 723
    assert "needs 128.5 GiB" in cli.run("diff", "llama-70b", "llama-70b", "--values", code=4).stderr


def test_text_output_and_errors(cli: Cli, tmp_path: Path) -> None:
    sd = mlp().state_dict()
    path = save(tmp_path / "w.safetensors", {k: v for k, v in sd.items() if k != "0.bias"} | {"extra": torch.zeros(2)})
    out = cli.run("diff", "mlp", path, code=1).stdout.splitlines()
    assert out[0] == f"a: mlp (model) · b: {path} (safetensors)"
    assert any(line.startswith("-  0.bias") and "[8] float32" in line for line in out)
    assert any(line.startswith("+  extra") and "[2] float32" in line for line in out)
    assert "1 only in a · 1 only in b · 0 changed · 3 the same: different" in out
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 4)
    err = cli.run("diff", "mlp", bad, code=3).stderr
    assert err.startswith(f"{bad}: error:") and len(err.splitlines()) == 1
    assert "no model file or built-in config" in cli.run("diff", "mlp", "nosuch", code=2).stderr


def test_json_fields(cli: Cli, tmp_path: Path) -> None:
    doc = cli.json("diff", "mlp", "tied", "--values", code=1)
    assert {"a", "b", "only_a", "only_b", "changed", "same", "equal"} <= set(doc)
    assert (doc["a"], doc["b"]) == ("mlp", "tied")
    assert all({"key", "a", "b", "max_abs_diff"} <= set(c) for c in doc["changed"])
