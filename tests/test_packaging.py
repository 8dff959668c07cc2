"""Packaging: the wheel carries the built-in configs, so `netinspect tree rgnet` works after a regular install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here starts processes

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_configs_and_runs_from_them(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("netinspect-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    shipped = {Path(n).name for n in names if n.startswith("netinspect/configs/")}
    assert shipped == {p.name for p in (ROOT / "configs").glob("*.yaml")}
    # run from the unpacked wheel, away from the checkout: configs resolve inside the package
    code = "import sys; from netinspect import session; p = session.config_names()['rgnet']; print(p)"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""}, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(site)


def test_version_and_module_entry() -> None:
    r = subprocess.run([sys.executable, "-m", "netinspect", "--version"], capture_output=True, text=True, timeout=60)
    from netinspect import __version__

    assert r.returncode == 0 and r.stdout.strip() == f"netinspect {__version__}"
