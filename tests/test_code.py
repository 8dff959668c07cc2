"""``netinspect code``: the generated file, run in a fresh process, builds what netinspect builds.

For each model: the file is written with ``code -o``, then one fresh Python process (which never
imports netinspect) imports every generated file, calls ``build(seed)``, and saves its state_dict,
its print(model) text and its forward output for the model's input (drawn after build, as
``netinspect forward`` does); those are compared bit for bit with netinspect's own build and forward.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import test_graphs as G
import torch
from conftest import Cli, assert_state_equal, write

from netinspect.session import BuildOptions, make

RUNNER = """
import importlib.util, json, sys
import torch
jobs = json.loads(sys.argv[1])
for job in jobs:
    spec = importlib.util.spec_from_file_location("generated_" + str(len(sys.modules)), job["file"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build(job["seed"])
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = None
    if job["inputs"] is not None:
        inputs = mod.FIRST_INPUT if getattr(mod, "FIRST_INPUT", None) else [eval(d, {"torch": torch}) for d in job["inputs"]]
        out = model(*inputs)
    torch.save({"state": state, "repr": str(model), "out": out, "netinspect": "netinspect" in sys.modules}, job["save"])
"""

INLINE = {
    "resnetish": G.RESNETISH,
    "transformer": G.TRANSFORMER,
    "inception": G.INCEPTION,
    "lazy": "netinspect: 1\ninput: [2, 20]\nmodel: [LazyLinear(256), ReLU, Dropout(0.2), LazyLinear(10)]\n",
    "encoder": "netinspect: 1\ninput: [2, 5, 16]\nmodel:\n"
    "  - TransformerEncoder(TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True), 2, enable_nested_tensor=False)\n",
    "post": "netinspect: 1\ninput: [3, 4]\nseed: 11\ndtype: float64\nmodel:\n  sequential:\n    a: Linear(4, 6)\n"
    "    frozen_part: {type: Linear, args: [6, 6], frozen: true}\n    b: Linear(6, 2)\n"
    "init:\n  - {target: a, weight: ['uniform(-10, 10)', mask_abs_below(5)], bias: default}\n  - {target: b, weight: 'constant(42)'}\n",
}
CONFIGS = ["mlp", "rgnet", "tied", "d2l-init", "d2l-custom-init", "mlp-bn", "lenet", "tinylm"]


def _draws(path: str) -> list[str] | None:
    """How netinspect draws the model's input, as a Python expression per input."""
    from netinspect.codegen import _draw

    built = make(path, BuildOptions(device="meta", need="structure")).built
    return [_draw(built, s) for s in built.spec.inputs] or None


@pytest.mark.slow
def test_generated_files_rebuild_the_same_model_in_a_fresh_process(tmp_path: Path, cli: Cli) -> None:
    models: dict[str, str] = {name: name for name in CONFIGS}
    for name, text in INLINE.items():
        models[name] = str(write(tmp_path, f"{name}.yaml", text))
    jobs, seeds = [], {}
    for name, path in models.items():
        target = tmp_path / f"gen_{name.replace('-', '_')}.py"
        cli.run("code", path, "-o", target)
        seed = 3 if name in ("rgnet", "transformer") else None
        spec_seed = make(path, BuildOptions(device="meta", need="structure")).built.seed
        seeds[name] = seed if seed is not None else spec_seed
        jobs.append({"file": str(target), "seed": seeds[name], "inputs": _draws(path), "save": str(tmp_path / f"{name}.pt")})
    r = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(jobs)], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for (name, path), job in zip(models.items(), jobs, strict=True):
        got = torch.load(job["save"], weights_only=False)
        assert not got["netinspect"], "the generated file needs only torch"
        mine = make(path, BuildOptions(seed=seeds[name])).built
        assert got["repr"] == str(mine.module), name
        assert_state_equal(got["state"], mine.module.state_dict())
        if job["inputs"] is not None:
            doc = cli.json("forward", path, "--seed", seeds[name], "--values")
            assert doc["output"] is not None, name
            out = got["out"][0] if isinstance(got["out"], tuple) else got["out"]
            expected = torch.tensor(doc["output"][0] if isinstance(got["out"], tuple) else doc["output"], dtype=out.dtype)
            assert torch.equal(out.detach(), expected), name


def test_code_reads_like_the_hand_written_class(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "resnet.yaml", G.RESNETISH)
    text = cli.run("code", path).stdout
    assert "class BasicBlock(nn.Module):" in text and "class BasicBlock_1(nn.Module):" in text
    assert "        identity = x\n" in text and "        identity = self.downsample(x)\n" in text
    assert "nn.init.kaiming_normal_(model.get_parameter(name), a=0, mode='fan_out', nonlinearity='relu')" in text
    assert "import netinspect" not in text
    compile(text, "generated.py", "exec")
    bad = cli.run("code", path, "-o", tmp_path / "missing" / "x.py", code=2)
    assert "folder" in bad.stderr and not (tmp_path / "missing").exists()


def test_code_of_a_model_whose_default_init_is_skipped(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SKIP_DEFAULT_MIN_NUMEL elements, netinspect skips the default init that rules overwrite:
    the generated build() constructs without values and replays the rest, in the same order."""
    import netinspect.build.materialise as materialise

    monkeypatch.setattr(materialise, "SKIP_DEFAULT_MIN_NUMEL", 10)
    monkeypatch.setattr("netinspect.codegen.SKIP_DEFAULT_MIN_NUMEL", 10)
    path = write(
        tmp_path,
        "skip.yaml",
        "netinspect: 1\nmodel:\n  class: Net\n  modules:\n    a: Linear(4, 4)\n    pos: {param: [4], init: 'normal(std=0.5)'}\n"
        "    b: Linear(4, 4)\n  forward: |\n    return b(a(x) + pos)\ninit:\n  - {target: a, weight: 'normal(std=0.1)', bias: zeros}\n",
    )
    target = tmp_path / "gen_skip.py"
    cli.run("code", path, "-o", target)
    text = target.read_text(encoding="utf-8")
    assert 'with torch.device("meta"):' in text and "model.get_submodule('b').reset_parameters()" in text
    ns: dict[str, object] = {"__name__": "generated"}
    exec(compile(text, str(target), "exec"), ns)
    rebuilt = ns["build"](0)  # type: ignore[operator]
    mine = make(str(path)).built.module
    assert_state_equal(rebuilt.state_dict(), mine.state_dict())


def test_generated_files_pass_ruff(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "t.yaml", G.TRANSFORMER)
    target = tmp_path / "gen.py"
    cli.run("code", path, "-o", target)
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "F,E9", "--no-cache", str(target)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
