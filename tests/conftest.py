"""Shared test helpers: an in-process CLI runner, plain-torch references, the ``--update-golden`` option.

The CLI runs in-process through typer's ``CliRunner`` (fast: torch is imported once per session);
a few tests start real processes to cover the console entry point.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from netinspect.cli import app

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
GOLDEN = TESTS / "golden"
sys.path.insert(0, str(ROOT / "bench"))  # the reference builders shared with the benchmark


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.txt from the current output instead of comparing with it",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


class Cli:
    """Runs ``netinspect ARGS`` in-process and checks the exit code."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def run(self, *args: object, code: int | None = 0) -> Any:
        argv = [str(a) for a in args]
        result = self.runner.invoke(app, argv, catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, (
                f"netinspect {' '.join(argv)} exited {result.exit_code}, expected {code}\n"
                f"--- stdout:\n{result.stdout}\n--- stderr:\n{result.stderr}"
            )
        return result

    def json(self, *args: object, code: int = 0) -> Any:
        """``netinspect ARGS --json``: exactly one JSON document on stdout, returned parsed."""
        result = self.run(*args, "--json", code=code)
        return one_json_document(result.stdout)


def one_json_document(text: str) -> Any:
    """Parse ``text`` as one JSON document and nothing else (whitespace allowed around it); NaN and
    Infinity, which Python writes but JSON has not, fail."""

    def not_json(name: str) -> Any:
        pytest.fail(f"{name} in JSON output (not JSON: write null)")

    decoder = json.JSONDecoder(parse_constant=not_json)
    stripped = text.strip()
    assert stripped, "stdout is empty; expected one JSON document"
    doc, end = decoder.raw_decode(stripped)
    assert end == len(stripped), f"more than one JSON document on stdout: {stripped[end : end + 200]!r}"
    return doc


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()


def run_process(*args: object, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m netinspect ARGS`` in a real process (the console entry point)."""
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "netinspect", *[str(a) for a in args]],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def seeded(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """Plain PyTorch: ``torch.manual_seed(seed)`` then the construction."""
    torch.manual_seed(seed)
    return build()


def d2l_mlp() -> nn.Module:
    """D2L "Parameter Management", the first cell."""
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def tie_groups(module: nn.Module) -> list[list[str]]:
    """Paths of ``named_parameters(remove_duplicate=False)`` grouped by ``id(param)``, groups of 2+ only."""
    groups: dict[int, list[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def unique_numel(module: nn.Module) -> int:
    seen: dict[int, int] = {}
    for _, p in module.named_parameters(remove_duplicate=False):
        seen[id(p)] = p.numel()
    return sum(seen.values())


def by_path_numel(module: nn.Module) -> int:
    return sum(p.numel() for _, p in module.named_parameters(remove_duplicate=False))


def assert_state_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Same keys in the same order, and bit-identical tensors (dtype and shape included)."""
    assert list(actual) == list(expected)
    for key in expected:
        a, e = actual[key], expected[key]
        assert a.dtype == e.dtype, key
        assert a.shape == e.shape, key
        assert torch.equal(a.detach().cpu(), e.detach().cpu()), f"{key}: values differ"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class Hang(BaseException):
    """Raised by the alarm in an in-process run (a BaseException, so netinspect cannot swallow it)."""


@contextlib.contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Fail an in-process run that takes longer than ``seconds`` instead of hanging the suite."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def fire(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def cli_recursion_limit() -> Iterator[None]:
    """The console entry point (``netinspect.cli.main``) raises the recursion limit; do the same."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


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


def probe(*args: str) -> tuple[str, str, str]:
    """``netinspect ARGS`` in a fresh process: ("TORCH" or "NO-TORCH", as any torch module was
    imported or none, the exit code, stderr)."""
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    state, code = r.stdout.strip().splitlines()[-1].split()
    return state, code, r.stderr
