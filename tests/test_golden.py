"""Golden human output (STYLE.md pattern 7): the layout people read, compared as text.

Output is plain text whenever stdout is not a terminal (no colour, no width), so the files in
tests/golden/ are exact. ``pytest --update-golden`` rewrites them. The layout is the one thing taken
from our own earlier output; the figures in it are checked here against plain torch as well.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest
import reference_models as R
from conftest import GOLDEN, ROOT, Cli, by_path_numel, run_process, seeded, tie_groups, unique_numel
from torch import nn


def _leaf_reprs(name: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        ref = seeded(R.REFERENCES[name])
        assert f"{unique_numel(ref):,} params" in text.splitlines()[0]
        for _, m in ref.named_modules():
            if not list(m.children()):
                assert f"{type(m).__name__}({m.extra_repr()})" in text
            own = sum(p.numel() for p in m.parameters(recurse=False))
            if own and not list(m.children()):
                assert f"{own:,} params" in text

    return check


def _params(name: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        ref = seeded(R.REFERENCES[name])
        first = [line.split()[0] for line in text.splitlines() if line.strip()]
        for pname, _ in ref.named_parameters(remove_duplicate=False):
            assert pname in first
        assert f"{unique_numel(ref):,} unique" in text
        assert f"{by_path_numel(ref):,} by path" in text

    return check


def _shared(name: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        ref = seeded(R.REFERENCES[name])
        for group in tie_groups(ref):
            assert " = ".join(group) in text
        assert f"{unique_numel(ref):,} unique" in text and f"{by_path_numel(ref):,} by path" in text

    return check


def _state_dict(name: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        ref = seeded(R.REFERENCES[name])
        first = [line.split()[0] for line in text.splitlines() if line.strip()]
        for key, t in ref.state_dict().items():
            assert key in first
            row = next(line for line in text.splitlines() if line.split() and line.split()[0] == key)
            assert str(t.dtype).removeprefix("torch.") in row

    return check


def _schemes(text: str) -> None:
    for fn in dir(nn.init):
        if fn.endswith("_") and not fn.startswith("_") and inspect.isfunction(getattr(nn.init, fn)):
            assert fn[:-1] in text, fn


def _configs(text: str) -> None:
    for path in (ROOT / "configs").glob("*.yaml"):
        assert any(line.split()[0] == path.stem for line in text.splitlines() if line.strip()), path.stem


CASES: dict[str, tuple[list[str], Callable[[str], None]]] = {
    "tree-mlp": (["tree", "mlp"], _leaf_reprs("mlp")),
    "tree-rgnet": (["tree", "rgnet"], _leaf_reprs("rgnet")),
    "tree-tied": (["tree", "tied"], _leaf_reprs("tied")),
    "tree-alexnet": (["tree", "alexnet"], _leaf_reprs("alexnet")),
    "params-mlp": (["params", "mlp"], _params("mlp")),
    "params-tied": (["params", "tied"], _params("tied")),
    "shared-tied": (["shared", "tied"], _shared("tied")),
    "state-dict-mlp-bn": (["state-dict", "mlp-bn"], _state_dict("mlp-bn")),
    "schemes": (["schemes"], _schemes),
    "configs": (["configs"], _configs),
}


def compare(name: str, text: str, update: bool) -> None:
    path = GOLDEN / f"{name}.txt"
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run pytest tests/test_golden.py --update-golden"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), f"golden/{name}.txt", "output"))
        pytest.fail(f"output differs from tests/golden/{name}.txt (pytest --update-golden rewrites it):\n{diff}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(cli: Cli, update_golden: bool, name: str) -> None:
    args, check = CASES[name]
    text = cli.run(*args).stdout
    assert "\x1b[" not in text, "colour codes in output that is not a terminal"
    check(text)
    compare(name, text, update_golden)


@pytest.mark.slow
def test_golden_through_a_real_process(tmp_path: Path) -> None:
    """The console entry point writes the same plain text when stdout is a pipe."""
    result = run_process("tree", "tied", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    path = GOLDEN / "tree-tied.txt"
    if path.exists():
        assert result.stdout == path.read_text(encoding="utf-8")


def test_no_golden_file_is_orphaned() -> None:
    files = {p.stem for p in GOLDEN.glob("*.txt")}
    assert files <= set(CASES), f"golden files without a test: {sorted(files - set(CASES))}"
