"""Hostile and malformed model files: every one fails with one located line, fast, and runs nothing.

The corpus lives in ``tests/hostile/*.yaml``, one case per file, each beginning with its
expectation in a comment header::

    # expect: exit=3 line=4 col=5 match="unknown module type 'Linaer'" errors=1
    # expect[forward]: exit=1 line=7 match="'2'"

``# expect:`` applies to ``validate`` and ``params``; ``# expect[CMD]:`` sets (or overrides)
the expectation for one command. Keys: ``exit`` (exit code), ``line`` (1-based line of the
first error; ``a|b`` allows either), ``col``, ``match`` (a substring of the first error line,
message or hint; repeatable), ``errors`` (the exact number of error lines), ``seconds``
(the in-process time limit, default 2). Cases that a text
file cannot hold (non-UTF-8 and NUL bytes, 10,000-deep nesting, a 1 MB scalar) are generated
into ``tmp_path`` by ``GENERATED`` below.

Each case runs in-process for ``validate`` and ``params`` (torch already imported, so the
time measured is the command's own: it must answer in well under two seconds), and as a real
process (``netinspect CMD FILE``) under a timeout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import Hang, cli_recursion_limit, hang_guard
from typer.testing import CliRunner

from netinspect.cli import app

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "hostile"
ROOT = HERE.parent
PROCESS_TIMEOUT = 90.0  # a hang guard: torch's import alone takes seconds on a loaded CI box
IN_PROCESS_LIMIT = 2.0  # seconds for one command once torch is imported
IN_PROCESS_GUARD = 20.0  # an in-process run still going after this is stopped (and fails)
DEFAULT_COMMANDS = ("validate", "params")
PWNED = Path("/tmp/netinspect-pwned")  # the path the corpus's shell payloads try to create


@dataclass
class Expect:
    exit: int
    lines: tuple[int, ...] = ()
    col: int | None = None
    match: list[str] = field(default_factory=list)
    errors: int | None = None
    seconds: float = IN_PROCESS_LIMIT  # in-process time limit for this case


_HEADER = re.compile(r"#\s*expect(?:\[(?P<cmd>[\w-]+)\])?:\s*(?P<body>.*)")


def parse_expectations(text: str) -> dict[str, Expect]:
    """The ``# expect`` header lines at the top of a case → {command: Expect}."""
    out: dict[str, Expect] = {}
    for raw in text.splitlines():
        m = _HEADER.match(raw.strip())
        if not m:
            if raw.strip().startswith("#"):
                continue
            break
        exp = Expect(exit=-1)
        for token in shlex.split(m.group("body")):
            key, _, value = token.partition("=")
            if key == "exit":
                exp.exit = int(value)
            elif key == "line":
                exp.lines = tuple(int(v) for v in value.split("|"))
            elif key == "col":
                exp.col = int(value)
            elif key == "match":
                exp.match.append(value)
            elif key == "errors":
                exp.errors = int(value)
            elif key == "seconds":
                exp.seconds = float(value)
            else:
                raise ValueError(f"unknown expectation key {key!r} in {raw!r}")
        assert exp.exit >= 0, f"expectation without exit=: {raw!r}"
        cmds = (m.group("cmd"),) if m.group("cmd") else DEFAULT_COMMANDS
        for cmd in cmds:
            out[cmd] = exp
    return out


# --- generated cases (content a text file in the corpus cannot hold) ----------------------------

HEAD = "netinspect: 1\n"


def _deep_flow(depth: int) -> bytes:
    return (HEAD + "model: " + "[" * depth + "ReLU" + "]" * depth + "\n").encode()


def _deep_mapping(depth: int) -> bytes:
    return (HEAD + "model: " + "{sequential: [" * depth + "ReLU" + "]}" * depth + "\n").encode()


def _deep_block_list(depth: int) -> bytes:
    lines = [HEAD.rstrip("\n"), "model:"]
    for i in range(depth):
        lines.append("  " * (i + 1) + "-")
    lines.append("  " * (depth + 1) + "- ReLU")
    return ("\n".join(lines) + "\n").encode()


def _deep_blocks(depth: int, reverse: bool = False) -> bytes:
    """A chain of blocks b(depth-1) -> ... -> b0, defined bottom-up (or top-down with ``reverse``)."""
    defs = ["  b0: [ReLU]"] + [f"  b{i}: [b{i - 1}]" for i in range(1, depth)]
    if reverse:
        defs.reverse()
    lines = [HEAD.rstrip("\n"), "blocks:", *defs, f"model: [b{depth - 1}]"]
    return ("\n".join(lines) + "\n").encode()


# name -> (bytes, {command: Expect})
GENERATED: dict[str, tuple[bytes, dict[str, Expect]]] = {
    "empty_file": (b"", {c: Expect(3, (1,), match=["empty"]) for c in DEFAULT_COMMANDS}),
    "whitespace_only": (b"  \n\n   \n", {c: Expect(3, (1,), match=["empty"]) for c in DEFAULT_COMMANDS}),
    "non_utf8_latin1": (
        HEAD.encode() + b"name: caf\xe9\nmodel: [ReLU]\n",
        {c: Expect(3, (2,), col=10, match=["UTF-8"]) for c in DEFAULT_COMMANDS},
    ),
    "non_utf8_lone_continuation": (
        HEAD.encode() + b"model:\n  - ReLU\n  - \x80\x81Tanh\n",
        {c: Expect(3, (4,), col=5, match=["UTF-8"]) for c in DEFAULT_COMMANDS},
    ),
    "binary_nul": (
        HEAD.encode() + b"model: [ReLU]\n\x00\x01\x02\x03binary\n",
        {c: Expect(3, (3,), match=["NUL"]) for c in DEFAULT_COMMANDS},
    ),
    "binary_png_header": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
        {c: Expect(3, (1, 2, 3)) for c in DEFAULT_COMMANDS},
    ),
    "utf16_text": (
        (HEAD + "model: [ReLU]\n").encode("utf-16"),
        {c: Expect(3, (1,)) for c in DEFAULT_COMMANDS},
    ),
    "random_bytes": (
        bytes((i * 167 + 13) % 256 for i in range(4096)),
        {c: Expect(3) for c in DEFAULT_COMMANDS},
    ),
    "control_chars": (
        HEAD.encode() + b"model: [ReLU\x07]\n",
        {c: Expect(3, (2,)) for c in DEFAULT_COMMANDS},
    ),
    "deep_flow_10000": (_deep_flow(10_000), {c: Expect(3, (2,), match=["deeper"]) for c in DEFAULT_COMMANDS}),
    "deep_mapping_10000": (_deep_mapping(10_000), {c: Expect(3, (2,), match=["deeper"]) for c in DEFAULT_COMMANDS}),
    "deep_block_list_10000": (_deep_block_list(10_000), {c: Expect(3, match=["deeper"]) for c in DEFAULT_COMMANDS}),
    "deep_flow_250": (_deep_flow(250), {c: Expect(3, (2,), match=["deeper than 200"]) for c in DEFAULT_COMMANDS}),
    "deep_blocks_10000": (_deep_blocks(10_000), {c: Expect(3, match=["deeper"]) for c in DEFAULT_COMMANDS}),
    "deep_blocks_reversed_10000": (_deep_blocks(10_000, reverse=True), {c: Expect(3, match=["deep"]) for c in DEFAULT_COMMANDS}),
    # 30,000 lines (600 kB): reading that much YAML alone takes about a second, so this one may take longer
    "deep_blocks_reversed_30000": (
        _deep_blocks(30_000, reverse=True),
        {c: Expect(3, match=["deep"], seconds=5.0) for c in DEFAULT_COMMANDS},
    ),
    "long_scalar_1mb": (
        (HEAD + "model:\n  - " + "A" * 1_000_000 + "\n").encode(),
        {c: Expect(3, (3,), col=5) for c in DEFAULT_COMMANDS},
    ),
    "many_errors_capped": (
        (HEAD + "model:\n" + "".join(f"  - Linaer{i}(4, 8)\n" for i in range(5000))).encode(),
        {c: Expect(3, (3,), col=5, match=["unknown module type"]) for c in DEFAULT_COMMANDS},
    ),
    # valid files that look unusual: they must pass
    "valid_crlf": (
        b"netinspect: 1\r\nmodel:\r\n  - Linear(4, 8)\r\n  - ReLU\r\n",
        {c: Expect(0) for c in DEFAULT_COMMANDS},
    ),
    "valid_bom": (
        b"\xef\xbb\xbfnetinspect: 1\nmodel: [ReLU]\n",
        {c: Expect(0) for c in DEFAULT_COMMANDS},
    ),
    "valid_deep_150": (_deep_flow(150), {c: Expect(0) for c in DEFAULT_COMMANDS}),
    "valid_unicode_name": (
        (HEAD + 'name: \u00e9t\u00e9-\u6a21\u578b\ndoc: "\U0001f600"\nmodel: [ReLU]\n').encode(),
        {c: Expect(0) for c in DEFAULT_COMMANDS},
    ),
}


@dataclass
class Case:
    name: str
    data: bytes | None  # None: the corpus file itself
    expect: dict[str, Expect]

    def materialise(self, tmp_path: Path) -> Path:
        if self.data is None:
            return CORPUS / f"{self.name}.yaml"
        path = tmp_path / f"{self.name}.yaml"
        path.write_bytes(self.data)
        return path


def corpus_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        cases.append(Case(path.stem, None, parse_expectations(path.read_text(encoding="utf-8"))))
    for name, (data, expect) in GENERATED.items():
        cases.append(Case(name, data, expect))
    return cases


CASES = corpus_cases()
PARAMS = [pytest.param(case, cmd, id=f"{case.name}-{cmd}") for case in CASES for cmd in sorted(case.expect)]


def _cmd_prefix() -> list[str]:
    exe = shutil.which("netinspect")
    return [exe] if exe else [sys.executable, "-m", "netinspect"]


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_netinspect(*args: object, cwd: Path | None = None, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_cmd_prefix(), *[str(a) for a in args]],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=PROCESS_TIMEOUT,
        env=_env(extra_path),
        check=False,
    )


def check_output(path: Path, cmd: str, exp: Expect, code: int, stdout: str, stderr: str) -> None:
    shown = f"netinspect {cmd} {path.name}: exit {code}\n--- stdout:\n{stdout[:2000]}\n--- stderr:\n{stderr[:4000]}"
    assert "Traceback" not in stdout + stderr, shown
    assert "internal error" not in stderr, shown
    assert code == exp.exit, f"expected exit {exp.exit}\n{shown}"
    if exp.exit == 0:
        return
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, f"no error message on stderr\n{shown}"
    first = lines[0]
    assert len(first) < 5000, f"an error line of {len(first):,} characters\n{shown[:3000]}"
    for ln in lines:
        assert ": error: " in ln or ln.startswith("netinspect: error:"), f"stderr line is not an error line: {ln[:300]!r}\n{shown}"
    if exp.lines or exp.exit == 3:
        # an invalid file (exit 3) is always located: FILE:LINE:COL of the offending node
        prefix = re.escape(str(path))
        m = re.match(rf"{prefix}:(\d+):(\d+): error: ", first)
        assert m, f"first stderr line does not start with FILE:LINE:COL: error:\n{shown}"
        line, col = int(m.group(1)), int(m.group(2))
        assert not exp.lines or line in exp.lines, f"error at line {line}, expected line {'|'.join(map(str, exp.lines))}\n{shown}"
        if exp.col is not None:
            assert col == exp.col, f"error at column {col}, expected column {exp.col}\n{shown}"
    for sub in exp.match:
        assert sub in first, f"{sub!r} not in the first error line\n{shown}"
    if exp.errors is not None:
        assert len(lines) == exp.errors, f"{len(lines)} error lines, expected {exp.errors}\n{shown}"


@pytest.fixture(scope="module")
def pwned_before() -> bool:
    return PWNED.exists()


_runner = CliRunner()


@pytest.fixture(scope="module")
def warm() -> None:
    """Import torch and the CLI once, so that the timings below measure the command alone.

    A forward pass on the meta device imports torch's meta kernels (about 2 s, once per
    process); validate takes that path for models or inputs too big to run on empty storage.
    """
    _runner.invoke(app, ["validate", "mlp"])
    _runner.invoke(app, ["forward", "mlp-bn", "--device", "meta"])


@pytest.mark.parametrize(("case", "cmd"), PARAMS)
def test_corpus(case: Case, cmd: str, tmp_path: Path, warm: None, pwned_before: bool) -> None:
    """In-process: exit code, located first line, message, no traceback, in well under two seconds."""
    path = case.materialise(tmp_path)
    exp = case.expect[cmd]
    start = time.perf_counter()
    try:
        with cli_recursion_limit(), hang_guard(IN_PROCESS_GUARD):
            result = _runner.invoke(app, [cmd, str(path)], catch_exceptions=True)
    except Hang:
        pytest.fail(f"netinspect {cmd} {path.name} still running after {IN_PROCESS_GUARD:.0f} s (limit {IN_PROCESS_LIMIT} s)")
    elapsed = time.perf_counter() - start
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"netinspect {cmd} {path.name}: uncaught {type(exc).__name__}: {exc}"
    check_output(path, cmd, exp, result.exit_code, result.stdout, result.stderr)
    assert elapsed < exp.seconds, f"netinspect {cmd} {path.name} took {elapsed:.2f} s (limit {exp.seconds} s)"
    if not pwned_before:
        assert not PWNED.exists(), f"{path.name} ran a shell command: {PWNED} exists"


def _process_params() -> list[Any]:
    """Every case by process when NETINSPECT_HOSTILE_PROCESS=all; else every 6th case, one command each.

    ``test_corpus`` runs every case and command in-process; this checks the real entry point."""
    every = os.environ.get("NETINSPECT_HOSTILE_PROCESS") == "all"
    out = []
    for i, case in enumerate(CASES):
        if not every and i % 6:
            continue
        cmds = sorted(c for c in case.expect if c in DEFAULT_COMMANDS)
        if not every and len(cmds) > 1:
            cmds = [cmds[i % len(cmds)]]
        out += [pytest.param(case, cmd, id=f"{case.name}-{cmd}") for cmd in cmds]
    return out


ProcessResult = tuple[Path, "subprocess.CompletedProcess[str] | subprocess.TimeoutExpired", float]


@pytest.fixture(scope="module")
def process_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], ProcessResult]:
    """Run the selected ``test_corpus_process`` cases as processes, several at a time (torch's import dominates)."""
    base = tmp_path_factory.mktemp("process")
    jobs: list[tuple[tuple[str, str], Path]] = []
    for item in request.session.items:
        if getattr(item, "originalname", None) != "test_corpus_process":
            continue
        case, cmd = item.callspec.params["case"], item.callspec.params["cmd"]
        folder = base / f"{case.name}-{cmd}"
        folder.mkdir()
        jobs.append(((case.name, cmd), case.materialise(folder)))

    def one(key: tuple[str, str], path: Path) -> ProcessResult:
        start = time.perf_counter()
        try:
            proc: subprocess.CompletedProcess[str] | subprocess.TimeoutExpired = run_netinspect(key[1], path)
        except subprocess.TimeoutExpired as exc:
            proc = exc
        return path, proc, time.perf_counter() - start

    workers = min(8, (os.cpu_count() or 2) + 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(one, key, path) for key, path in jobs}
        return {key: fut.result() for key, fut in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize(("case", "cmd"), _process_params())
def test_corpus_process(case: Case, cmd: str, process_results: dict[tuple[str, str], ProcessResult], pwned_before: bool) -> None:
    """The real console entry point under a timeout: the same expectations, no hang.

    Each case runs one of its commands here (``validate`` and ``params`` alternate over the
    corpus; the in-process test above runs both). ``NETINSPECT_HOSTILE_PROCESS=all`` runs both.
    """
    path, proc, elapsed = process_results[(case.name, cmd)]
    if isinstance(proc, subprocess.TimeoutExpired):
        pytest.fail(f"netinspect {cmd} {path.name} still running after {PROCESS_TIMEOUT:.0f} s")
    check_output(path, cmd, case.expect[cmd], proc.returncode, proc.stdout, proc.stderr)
    if not pwned_before:
        assert not PWNED.exists(), f"{path.name} ran a shell command: {PWNED} exists"


def test_corpus_is_well_formed() -> None:
    files = sorted(CORPUS.glob("*.yaml"))
    assert len(files) >= 60
    for path in files:
        expect = parse_expectations(path.read_text(encoding="utf-8"))
        assert expect, f"{path.name} has no '# expect:' header"
        assert set(expect) <= {"validate", "params", "forward", "tree", "state-dict", "shared", "init"}


# --- forward -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", [c.name for c in CASES if "forward" in c.expect])
def test_forward_failure(name: str, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == name)
    path = case.materialise(tmp_path)
    proc = run_netinspect("forward", path)
    check_output(path, "forward", case.expect["forward"], proc.returncode, proc.stdout, proc.stderr)


# --- nothing runs ---------------------------------------------------------------------------------


def _payloads(marker: Path) -> dict[str, str]:
    """Model files that try to create ``marker`` by every route a model file has."""
    sh = f"touch {marker}"
    py = f"__import__('os').system('{sh}')"
    return {
        "tag_apply": f'{HEAD}name: !!python/object/apply:os.system ["{sh}"]\nmodel: [ReLU]\n',
        "tag_apply_model": f'{HEAD}model:\n  - !!python/object/apply:os.system ["{sh}"]\n',
        "tag_new": f'{HEAD}vars: !!python/object/new:os.system ["{sh}"]\nmodel: [ReLU]\n',
        "tag_subprocess": f"{HEAD}model: !!python/object/apply:subprocess.call [[touch, {marker}]]\n",
        "tag_key": f'{HEAD}!!python/object/apply:os.system ["{sh}"]: 1\nmodel: [ReLU]\n',
        "expr_arg": f'{HEAD}model:\n  - "Linear({py}, 8)"\n',
        "expr_node": f'{HEAD}model:\n  - "{py}"\n',
        "expr_var": f'{HEAD}vars: {{h: "${{{py}}}"}}\nmodel: [ReLU]\n',
        "expr_repeat": f'{HEAD}model:\n  - type: ReLU\n    repeat: "${{{py}}}"\n',
        "expr_with": (
            f'{HEAD}blocks:\n  b:\n    params: {{d: 4}}\n    body: ["Linear(d, d)"]\nmodel:\n  - use: b\n    with: {{d: "${{{py}}}"}}\n'
        ),
        "expr_scheme": f'{HEAD}model: ["Linear(4, 8)"]\ninit:\n  - weight: "normal(std={py})"\n',
        "expr_lambda": f'{HEAD}model:\n  - "Linear((lambda: {py})(), 8)"\n',
        "expr_comprehension": f'{HEAD}model:\n  - "Linear([{py} for _ in (1,)][0], 8)"\n',
        "expr_subclasses": f"{HEAD}model:\n  - \"Linear(().__class__.__base__.__subclasses__()[0]('{sh}'), 8)\"\n",
        "dotted_os": f"{HEAD}model:\n  - \"os.system('{sh}')\"\n",
        "dotted_subprocess": f"{HEAD}model:\n  - \"subprocess.Popen(['touch', '{marker}'])\"\n",
        "dotted_type": f"{HEAD}model:\n  - type: os.system\n    args: ['{sh}']\n",
        "dotted_builtins": f'{HEAD}model:\n  - "builtins.exec({sh!r})"\n',
        "dotted_importlib": f"{HEAD}model:\n  - \"importlib.import_module('os').system('{sh}')\"\n",
        "dotted_init_types": f'{HEAD}model: ["Linear(4, 8)"]\ninit:\n  - types: [os.system]\n    weight: zeros\n',
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_payloads(Path("/x"))))
def test_payload_leaves_no_trace(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / f"{name}.yaml"
    path.write_text(_payloads(marker)[name], encoding="utf-8")
    proc = run_netinspect("validate", path)  # the real entry point
    assert proc.returncode == 3, f"validate: exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"{path}:"), proc.stderr
    assert not marker.exists(), f"{name}: netinspect validate ran the payload"
    for args in (["params"], ["tree"], ["forward", "--input", "2,4"], ["init", "--scheme", "zeros"]):
        with cli_recursion_limit():
            result = _runner.invoke(app, [args[0], str(path), *args[1:]], catch_exceptions=True)
        assert result.exit_code == 3, f"{args[0]}: exit {result.exit_code}\n{result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr
        assert result.stderr.startswith(f"{path}:"), result.stderr
        assert not marker.exists(), f"{name}: netinspect {args[0]} ran the payload"


@pytest.mark.slow
def test_cli_payloads_leave_no_trace(tmp_path: Path) -> None:
    """The same routes on the command line: --scheme, --bias, --rules, --set, --allow."""
    marker = tmp_path / "pwned"
    py = f"__import__('os').system('touch {marker}')"
    rules = tmp_path / "rules.yaml"
    rules.write_text(f'- weight: !!python/object/apply:os.system ["touch {marker}"]\n', encoding="utf-8")
    runs = [
        (["init", "mlp", "--scheme", f"normal(std={py})"], 2),
        (["init", "mlp", "--bias", f"[{py}]"], 2),
        (["init", "mlp", "--rules", rules], 3),
        (["init", "mlp", "--set", f"0.weight[{py}]=1"], 2),
        (["init", "mlp", "--set", f"0.weight[0,0]={py}"], 2),
        (["params", "mlp", "--allow", "os:system"], 2),
        (["params", "mlp", "--allow", "subprocess:Popen"], 2),
        (["params", "mlp", "--module", py], 2),
        (["state-dict", "mlp", "--key", py], 2),
    ]
    for args, code in runs:
        proc = run_netinspect(*args)
        shown = f"netinspect {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr}"
        assert "Traceback" not in proc.stdout + proc.stderr, shown
        assert proc.returncode == code, shown
        assert not marker.exists(), f"{shown}\nran the payload"


# --- --allow ----------------------------------------------------------------------------------------

MYLAYERS = '''
import torch
from torch import nn


class Scale(nn.Module):
    """A learnable per-feature scale."""

    def __init__(self, n, init=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((n,), float(init)))

    def forward(self, x):
        return x * self.weight


class NotAModule:
    def __init__(self, n):
        self.n = n


def factory(n):
    return nn.Linear(n, n)
'''


@pytest.fixture
def mylayers(tmp_path: Path) -> Path:
    pkg = tmp_path / "pkgdir"
    pkg.mkdir()
    (pkg / "mylayers_ni.py").write_text(MYLAYERS, encoding="utf-8")
    return pkg


@pytest.mark.slow
def test_allow_grants_module_subclass(tmp_path: Path, mylayers: Path) -> None:
    model = tmp_path / "m.yaml"
    model.write_text(f"{HEAD}input: [2, 4]\nmodel:\n  - Linear(4, 4)\n  - mylayers_ni.Scale(4, init=2.0)\n  - Scale(4)\n", encoding="utf-8")
    # refused without a grant, at the dotted node
    proc = run_netinspect("validate", model, extra_path=mylayers)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"{model}:5:5: error: "), proc.stderr
    assert "--allow mylayers_ni:Scale" in proc.stderr
    assert "Traceback" not in proc.stderr
    # granted
    for cmd in ("validate", "params", "forward"):
        proc = run_netinspect(cmd, model, "--allow", "mylayers_ni:Scale", extra_path=mylayers)
        assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
        assert "Traceback" not in proc.stdout + proc.stderr
    proc = run_netinspect("params", model, "--allow", "mylayers_ni:Scale", "--json", extra_path=mylayers)
    doc = json.loads(proc.stdout)
    names = [p["name"] for p in doc["parameters"]]
    assert names == ["0.weight", "0.bias", "1.weight", "2.weight"]
    # a granted class still has its arguments checked against its signature
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"{HEAD}model:\n  - Linear(4, 4)\n  - Scale(4, iinit=2.0)\n", encoding="utf-8")
    proc = run_netinspect("validate", bad, "--allow", "mylayers_ni:Scale", extra_path=mylayers)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"{bad}:4:5: error: "), proc.stderr
    assert "iinit" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "grant",
    [
        "mylayers_ni:NotAModule",
        "mylayers_ni:factory",
        "mylayers_ni:Missing",
        "mylayers_ni_missing:Scale",
        "mylayers_ni",
        "mylayers_ni:",
        ":Scale",
        "os:system",
    ],
)
def test_allow_refuses_non_module(grant: str, tmp_path: Path, mylayers: Path) -> None:
    model = tmp_path / "m.yaml"
    model.write_text(f"{HEAD}model:\n  - Linear(4, 4)\n", encoding="utf-8")
    proc = run_netinspect("params", model, "--allow", grant, extra_path=mylayers)
    assert proc.returncode == 2, f"--allow {grant}: exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], proc.stderr


# --- all errors in one run; JSON errors --------------------------------------------------------------

THREE_SPEC_MISTAKES = """\
netinspect: 1
sed: 0
model:
  - Linear(4, 8)
  - type: ReLU
    repeat: 2.5
  - Linear(8, hiden)
"""

THREE_MIXED_MISTAKES = """\
netinspect: 1
model:
  - Linaer(4, 8)
  - ReLU
  - Linear(8, 8, bais=True)
  - Tanh
  - Linear(8)
init:
  - weight: xavier_unifrom
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "lines"),
    [(THREE_SPEC_MISTAKES, [2, 6, 7]), (THREE_MIXED_MISTAKES, [3, 5, 7, 9])],
    ids=["spec-stage", "mixed-stages"],
)
def test_every_error_in_one_run(text: str, lines: list[int], tmp_path: Path) -> None:
    path = tmp_path / "three.yaml"
    path.write_text(text, encoding="utf-8")
    for cmd in ("validate", "params"):
        proc = run_netinspect(cmd, path)
        assert proc.returncode == 3, proc.stderr
        assert "Traceback" not in proc.stderr
        got = []
        for ln in proc.stderr.strip().splitlines():
            m = re.match(rf"{re.escape(str(path))}:(\d+):(\d+): error: ", ln)
            assert m, f"not a located error line: {ln!r}"
            got.append(int(m.group(1)))
        assert sorted(got) == lines, f"{cmd}: reported lines {got}, expected {lines}\n{proc.stderr}"


@pytest.mark.slow
def test_json_errors_are_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(THREE_SPEC_MISTAKES, encoding="utf-8")
    for cmd in ("validate", "params"):
        proc = run_netinspect(cmd, path, "--json")
        assert proc.returncode == 3
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 3, proc.stderr
        for ln in lines:
            doc = json.loads(ln)
            err = doc["error"]
            assert set(err) >= {"file", "line", "column", "message", "hint"}
            assert err["file"] == str(path)
            assert isinstance(err["line"], int) and isinstance(err["column"], int)
            assert isinstance(err["message"], str) and err["message"]
        assert [json.loads(ln)["error"]["line"] for ln in lines] == [2, 6, 7]
        if cmd == "params":
            assert proc.stdout == "", "nothing on stdout when the file is invalid"
    # YAML-level errors, binary files and forward failures too
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"netinspect: 1\n\x00\x00")
    proc = run_netinspect("params", bad, "--json")
    assert proc.returncode == 3
    assert json.loads(proc.stderr.strip().splitlines()[0])["error"]["line"] == 2
    fwd = CORPUS / "forward_shape_mismatch.yaml"
    proc = run_netinspect("forward", fwd, "--json")
    assert proc.returncode == 1, proc.stderr
    err = json.loads(proc.stderr.strip().splitlines()[0])["error"]
    assert err["line"] == 9 and "'2'" in err["message"]


@pytest.mark.slow
def test_debug_is_the_only_way_to_a_traceback(tmp_path: Path) -> None:
    """User errors never show a traceback, even with --debug they are one line."""
    proc = run_netinspect("params", CORPUS / "unknown_module_type.yaml", "--debug")
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
