"""Fast paths: --help, schemes, configs and files with YAML or structural errors never import torch."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import probe

pytestmark = pytest.mark.slow  # every test here starts processes


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("tree", "--help"),
        ("init", "--help"),
        ("schemes",),
        ("configs",),
        ("ops",),
        ("ops", "--json"),
        ("--version",),
        ("summary", "--help"),
    ],
)
def test_no_torch_for_help_and_listings(args: tuple[str, ...]) -> None:
    state, code, _ = probe(*args)
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
        state, code, _ = probe(cmd, str(path))
        assert (state, code) == ("NO-TORCH", "3")
