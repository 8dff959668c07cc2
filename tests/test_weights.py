"""--weights loading, --save writing (atomic), --set edits: compared with plain torch."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

from netinspect import weights
from netinspect.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def d2l_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def state_values(*args: str) -> dict[str, list[object]]:
    code, out, err = run("state-dict", *args, "--values", "--json")
    assert code == 0, err
    return {e["key"]: e["values"] for e in json.loads(out)["entries"]}


def test_save_pt_equals_torch_state_dict(tmp_path: Path) -> None:
    target = tmp_path / "mlp.pt"
    code, _, err = run("init", "mlp", "--save", str(target))
    assert code == 0, err
    saved = torch.load(target, weights_only=True)
    ref = d2l_mlp().state_dict()
    assert list(saved) == list(ref)
    for k in ref:
        assert torch.equal(saved[k], ref[k])


def test_save_pt_keeps_tied_storage(tmp_path: Path) -> None:
    target = tmp_path / "tied.pt"
    assert run("init", "tied", "--save", str(target))[0] == 0
    saved = torch.load(target, weights_only=True)
    assert len(saved) == 8  # state_dict keeps both keys of a tie
    assert saved["2.weight"].data_ptr() == saved["4.weight"].data_ptr()


def test_save_safetensors_stores_tied_once_and_reloads_tied(tmp_path: Path) -> None:
    target = tmp_path / "tiny.safetensors"
    assert run("init", "tinylm", "--save", str(target))[0] == 0
    flat = load_file(str(target))
    assert "embed.weight" in flat and "head.weight" not in flat
    from safetensors import safe_open

    with safe_open(str(target), framework="pt") as f:
        aliases = json.loads(f.metadata()[weights.ALIASES_KEY])
    assert aliases == {"head.weight": "embed.weight"}
    # loading restores the alias, and the tie holds: one Parameter at both paths
    code, out, err = run("shared", "tinylm", "--weights", str(target), "--json")
    assert code == 0, err
    groups = json.loads(out)["groups"]
    assert any(set(g["paths"]) == {"embed.weight", "head.weight"} and g["cause"] == "tie" for g in groups)


def test_weights_load_values_exactly(tmp_path: Path) -> None:
    torch.manual_seed(123)
    ref = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    path = tmp_path / "w.pt"
    torch.save(ref.state_dict(), path)
    got = state_values("mlp", "--weights", str(path))
    for k, v in ref.state_dict().items():
        assert torch.equal(torch.tensor(got[k]), v)


def test_weights_safetensors_plain_file(tmp_path: Path) -> None:
    torch.manual_seed(5)
    ref = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    got = state_values("mlp", "--weights", str(path))
    assert torch.equal(torch.tensor(got["0.weight"]), ref[0].weight.detach())


def test_weights_mismatches_named(tmp_path: Path) -> None:
    sd = d2l_mlp().state_dict()
    sd["extra.weight"] = torch.zeros(2)
    sd["2.weight"] = torch.zeros(3, 8)
    del sd["0.bias"]
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    code, _, err = run("params", "mlp", "--weights", str(path))
    assert code == 3
    assert "missing key '0.bias'" in err
    assert "unexpected key 'extra.weight'" in err
    assert "shape mismatch for '2.weight': file [3, 8], model [1, 8]" in err
    assert "Traceback" not in err
    # --partial loads what matches and warns about the rest
    code, out, err = run("state-dict", "mlp", "--weights", str(path), "--partial", "--key", "0.weight")
    assert code == 0
    assert "warning" in err
    assert out.strip() == str(sd["0.weight"])


def tied_reference(seed: int = 7) -> nn.Sequential:
    """configs/tied.yaml in plain torch: one Linear(8, 8) at paths 2 and 4."""
    torch.manual_seed(seed)
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))


def test_tied_keys_load_once_and_must_agree(tmp_path: Path) -> None:
    ref = tied_reference()
    sd = {k: v.detach().clone().contiguous() for k, v in ref.state_dict().items()}  # each key its own tensor
    path = tmp_path / "tied.safetensors"
    save_file(sd, str(path))
    got = state_values("tied", "--weights", str(path))
    for k, v in ref.state_dict().items():
        assert torch.equal(torch.tensor(got[k]), v)
    sd["4.weight"] = sd["4.weight"] + 1  # the two paths of one Parameter disagree: which would torch keep?
    save_file(sd, str(path))
    code, _, err = run("params", "tied", "--weights", str(path))
    assert code == 3, err
    assert "tied paths 2.weight, 4.weight have different values in the file" in err


def test_keys_and_shapes_are_checked_before_any_value_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netinspect.tables import TensorTable

    reads: list[str] = []
    original = TensorTable.values

    def counted(self: TensorTable, key: str) -> object:
        reads.append(key)
        return original(self, key)

    monkeypatch.setattr(TensorTable, "values", counted)
    sd = dict(d2l_mlp().state_dict())
    sd["2.weight"] = torch.zeros(3, 8)
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    code, _, err = run("params", "mlp", "--weights", str(path))
    assert code == 3 and "shape mismatch for '2.weight'" in err
    assert reads == []
    save_file(dict(d2l_mlp(3).state_dict()), str(path))
    assert run("params", "mlp", "--weights", str(path))[0] == 0
    assert sorted(reads) == sorted(d2l_mlp().state_dict())  # then each tensor once


def test_partial_warnings_follow_the_output_format(tmp_path: Path) -> None:
    """With --json, --partial's warnings are JSON lines on stderr like the errors (never plain text),
    and stdout holds the one document; without it they are 'FILE: warning: ...' lines."""
    sd = d2l_mlp().state_dict()
    del sd["0.bias"]
    sd["extra.weight"] = torch.zeros(2)
    path = tmp_path / "partial.pt"
    torch.save(sd, path)
    code, out, err = run("params", "mlp", "--weights", str(path), "--partial", "--json")
    assert code == 0, err
    assert json.loads(out)["totals"]["unique"] == 49
    lines = [json.loads(line) for line in err.strip().splitlines()]
    assert [sorted(x) for x in lines] == [["warning"], ["warning"]]
    assert {x["warning"]["message"] for x in lines} == {"missing key '0.bias' (shape [8])", "unexpected key 'extra.weight'"}
    assert all(x["warning"]["file"] == str(path) for x in lines)
    code, _, err = run("params", "mlp", "--weights", str(path), "--partial")
    assert code == 0
    assert err.splitlines() == [
        f"{path}: warning: missing key '0.bias' (shape [8]); hint: the file lacks it; --partial loads the rest",
        f"{path}: warning: unexpected key 'extra.weight'; hint: did you mean '2.weight' or '0.weight'?",
    ]


@pytest.mark.parametrize("content", [b"", b"garbage garbage", b"PK\x03\x04truncated zip", b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1'])
def test_corrupt_weights_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    code, out, err = run("params", "mlp", "--weights", str(path))
    assert code == 3
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{path}: error:")
    assert "Traceback" not in err


def test_truncated_real_files(tmp_path: Path) -> None:
    for suffix in (".pt", ".safetensors"):
        good = tmp_path / f"good{suffix}"
        assert run("init", "mlp", "--save", str(good))[0] == 0
        data = good.read_bytes()
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[: len(data) // 2])
        code, _, err = run("params", "mlp", "--weights", str(cut))
        assert code == 3, err
        assert "Traceback" not in err


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch " + str(MARK),))


MARK = Path("/tmp/netinspect-evil-marker")


def test_pickled_code_is_never_run(tmp_path: Path) -> None:
    MARK.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    torch.save({"0.weight": torch.zeros(8, 4), "x": Evil()}, path)
    path2 = tmp_path / "evil2.pth"
    path2.write_bytes(pickle.dumps(Evil()))
    for p in (path, path2):
        code, _, err = run("params", "mlp", "--weights", str(p))
        assert code == 3
        assert "Traceback" not in err
    assert not MARK.exists()


def test_meta_checks_keys_without_values(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    assert run("init", "mlp", "--save", str(path))[0] == 0
    code, out, err = run("params", "mlp", "--device", "meta", "--weights", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["parameters"][0]["device"] == "meta"


def test_save_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.pt"
    target.write_bytes(b"old contents")

    def boom(obj: object, f: str) -> None:
        Path(f).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    code, _, err = run("init", "mlp", "--save", str(target))
    assert code == 130
    assert "Traceback" not in err
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]


def test_save_unknown_suffix_is_usage_error(tmp_path: Path) -> None:
    code, _, err = run("init", "mlp", "--save", str(tmp_path / "x.bin"))
    assert code == 2 and "unknown format" in err


def test_set_edits_match_torch() -> None:
    net = d2l_mlp()
    with torch.no_grad():
        net[0].weight.data[:] += 1
        net[0].weight.data[0, 0] = 42
    got = state_values("mlp")  # unedited first: differs
    assert torch.tensor(got["0.weight"])[0, 0] != 42
    code, out, err = run("init", "mlp", "--set", "0.weight[:]+=1", "--set", "0.weight[0,0]=42", "--json")
    assert code == 0, err
    row = next(r for r in json.loads(out)["parameters"] if r["name"] == "0.weight")
    w = net[0].weight.detach()
    assert row["max"] == pytest.approx(w.max().item())
    assert row["mean"] == pytest.approx(w.mean().item())


def test_set_on_tied_writes_through(tmp_path: Path) -> None:
    target = tmp_path / "t.pt"
    code, _, err = run("init", "tied", "--set", "2.weight[0,0]=100", "--save", str(target))
    assert code == 0, err
    sd = torch.load(target, weights_only=True)
    assert sd["4.weight"][0, 0].item() == 100
    assert torch.equal(sd["2.weight"][0], sd["4.weight"][0])


@pytest.mark.parametrize("bad", ["0.weight", "nope[0]=1", "0.weight[a]=1", "0.weight[0,0]=x", "0.weight[99,0]=1"])
def test_bad_set_is_usage_error(bad: str) -> None:
    code, _, err = run("init", "mlp", "--set", bad)
    assert code == 2, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_exit_code_from_entry_point(tmp_path: Path) -> None:
    # a real process receiving SIGINT while building exits 130 with no traceback
    import signal
    import time

    p = subprocess.Popen([sys.executable, "-m", "netinspect", "params", "mlp"], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode in (130, 0)  # 0 if it finished before the signal arrived
    assert b"Traceback" not in err
