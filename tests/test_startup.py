"""Fast paths: --help, schemes, configs and files with YAML or structural errors never import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here starts processes

PROBE = """
import sys
sys.argv = ["netinspect", *sys.argv[1:]]
from netinspect import cli
try:
    cli.app()
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH" if loaded else "NO-TORCH", code)
"""


def probe(*args: str) -> tuple[str, str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    last = r.stdout.strip().splitlines()[-1]
    state, code = last.split()
    return state, code


@pytest.mark.parametrize(
    "args",
    [("--help",), ("tree", "--help"), ("init", "--help"), ("schemes",), ("configs",), ("ops",), ("ops", "--json"), ("--version",)],
)
def test_no_torch_for_help_and_listings(args: tuple[str, ...]) -> None:
    state, code = probe(*args)
    assert state == "NO-TORCH"
    assert code in ("0", "None")


@pytest.mark.parametrize(
    "text",
    [
        "netinspect: 1\nmodel: [Linear(4, 8\n",  # YAML syntax
        "netinspect: 1\nmodel:\n  - sequential: 3\n",  # structure
        "netinspect: 2\nmodel: {sequential: 5}\nextra: 1\n",  # schema version, unknown key
        "netinspect: 1\nmodel:\n  - ref: nowhere\n",  # undefined ref
    ],
)
def test_file_errors_before_torch(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    for cmd in ("validate", "params"):
        state, code = probe(cmd, str(path))
        assert (state, code) == ("NO-TORCH", "3")
