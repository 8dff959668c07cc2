"""netinspect's benchmark: wall time and peak memory side by side with `import torch` and the
plain-PyTorch (and torchinfo) code a user would otherwise write.

Usage: python bench/run.py [--repeat N] [--quick] [--markdown] [--only TEXT] [--json-out FILE]
       python bench/run.py --from-json FILE [--markdown]   (print the tables of a saved run)

Every case is a fresh process. After one uncounted warm-up round of the light cases, the cases
run interleaved: each of N rounds (default 5) runs every case once, in a shuffled order. The
table gives the median wall time, its ratio to the median of `python -c "import torch"`, the
largest peak RSS (``ru_maxrss`` of that child, from ``os.wait4``) and its difference from
import torch's, the exit code, and the target of issue 3 where one applies. ``--quick``: one
round, without the 1.5B-parameter init cases. Exit status: 0 when every target passes, 1 otherwise.

Files: bench/plain.py (the plain-torch and torchinfo scripts), bench/phases.py (runs a
netinspect command and times its phases from inside: used for the init cases),
bench/make_models.py (writes bench/models/deep100.yaml and wide8000.yaml), bench/prof.py
(cProfile of one netinspect command, for investigating a slow case).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
INIT_MODEL = "configs/gpt2-xl.yaml"  # 1,557,611,200 unique parameters
UNIFORM = "uniform(-0.1, 0.1)"
NORMAL = "normal(0, 0.02)"


@dataclass(frozen=True)
class Target:
    text: str
    ratio: float
    rss_extra_mib: float | None = None  # peak RSS at most import torch's + this
    #: (case, BENCH key): that case's measured seconds are added to the allowance (ratio × import torch + them)
    plus: tuple[str, str] | None = None


@dataclass
class Case:
    key: str
    section: str
    label: str
    argv: list[str]
    target: Target | None = None
    expect_rc: int = 0
    json_stdout: bool = False
    heavy: bool = False
    timeout: float = 300.0


@dataclass
class Sample:
    wall: float
    rss_kib: int
    rc: int
    bench: dict[str, Any]
    output_ok: bool
    stderr_tail: str


@dataclass
class Result:
    case: Case
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def rss_mib(self) -> float:
        return max(s.rss_kib for s in self.samples) / 1024

    @property
    def rcs(self) -> list[int]:
        return sorted({s.rc for s in self.samples})

    def bench_median(self, key: str) -> float | None:
        values = [s.bench[key] for s in self.samples if isinstance(s.bench.get(key), (int, float))]
        return statistics.median(values) if values else None


# --- the cases -----------------------------------------------------------------------------------


def netinspect_cmd() -> list[str]:
    script = Path(PY).parent / "netinspect"
    if script.exists():
        return [str(script)]
    found = shutil.which("netinspect")
    return [found] if found else [PY, "-m", "netinspect"]


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def cases(quick: bool) -> list[Case]:
    ni = netinspect_cmd()
    plain = [PY, str(BENCH / "plain.py")]
    phases = [PY, str(BENCH / "phases.py")]
    models = "bench/models"
    one = Target("≤ 1.0×", 1.0)
    out = [Case("torch", "baseline", 'python -c "import torch"', [PY, "-c", "import torch"])]
    out += [
        Case("help", "torch-free", "netinspect --help", [*ni, "--help"], Target("≤ 0.15×", 0.15)),
        Case("schemes", "torch-free", "netinspect schemes", [*ni, "schemes"]),
        Case("configs", "torch-free", "netinspect configs", [*ni, "configs"]),
    ]
    torchinfo = have("torchinfo")
    for net in ("mlp", "rgnet", "tied"):
        sec = f"D2L {net}"
        path = f"configs/{net}.yaml"
        out += [
            Case(f"{net}-validate", sec, f"netinspect validate {net}", [*ni, "validate", path], one),
            Case(f"{net}-tree", sec, f"netinspect tree {net}", [*ni, "tree", path], one),
            Case(f"{net}-params", sec, f"netinspect params --json {net}", [*ni, "params", "--json", path], one, json_stdout=True),
            Case(f"{net}-plain-print", sec, f"plain torch: print(model) {net}", [*plain, net, "print"]),
            Case(f"{net}-plain-params", sec, f"plain torch: named_parameters loop {net}", [*plain, net, "params"]),
        ]
        if torchinfo:
            out.append(Case(f"{net}-torchinfo", sec, f"torchinfo summary {net}", [*plain, net, "torchinfo"]))
    meta = Target("≤ 1.0×, RSS ≤ torch + 100 MiB", 1.0, 100.0)
    for size in ("7b", "70b"):
        sec = "LLaMA shapes"
        out.append(
            Case(
                f"llama-{size}-meta",
                sec,
                f"netinspect params --json --device meta llama-{size}",
                [*ni, "params", "--json", "--device", "meta", f"configs/llama-{size}.yaml"],
                meta,
                json_stdout=True,
            )
        )
    out.append(
        Case(
            "llama-70b-cpu",
            "LLaMA shapes",
            "netinspect params --json llama-70b (cpu: refused)",
            [*ni, "params", "--json", "--device", "cpu", "configs/llama-70b.yaml"],
            Target("exit 4, ≤ 1.0×", 1.0),
            expect_rc=4,
        )
    )
    for size in ("7b", "70b"):
        out.append(
            Case(
                f"llama-{size}-plain",
                "LLaMA shapes",
                f"plain torch: meta build + named_parameters loop {size}",
                [*plain, f"llama-{size}", "params"],
            )
        )
    sec = "graphs (written forward)"
    out += [
        Case(
            "graph-error-validate",
            sec,
            "netinspect validate: a forward error (no torch)",
            [*ni, "validate", f"{models}/bad_forward.yaml"],
            Target("exit 3, ≤ 0.15×", 0.15),
            expect_rc=3,
        ),
        Case(
            "llama-70b-tree",
            sec,
            "netinspect tree --device meta llama-70b",
            [*ni, "tree", "--device", "meta", "configs/llama-70b.yaml"],
            one,
        ),
        Case(
            "llama-70b-forward-meta",
            sec,
            "netinspect forward --device meta llama-70b",
            [*ni, "forward", "--device", "meta", "configs/llama-70b.yaml"],
            one,
        ),
        Case(
            "resnet50-forward",
            sec,
            "netinspect forward resnet50 (cpu)",
            [*ni, "forward", "configs/resnet50.yaml"],
            Target("≤ 1.0× + plain build and forward", 1.0, plus=("resnet50-plain-forward", "work_s")),
        ),
        Case("resnet50-plain-forward", sec, "plain torch: resnet50 built and run once", [*plain, "resnet50", "forward"]),
        Case(
            "llama-70b-summary",
            sec,
            "netinspect summary --device meta llama-70b --input 1,4096",
            [*ni, "summary", "--device", "meta", "--input", "1,4096", "configs/llama-70b.yaml"],
            one,
        ),
    ]
    sec = "100-deep nesting"
    out += [
        Case("deep100-tree", sec, "netinspect tree deep100", [*ni, "tree", f"{models}/deep100.yaml"], one),
        Case("deep100-plain-print", sec, "plain torch: print(model) deep100", [*plain, "deep100", "print"]),
    ]
    if torchinfo:
        out.append(Case("deep20-torchinfo", sec, "torchinfo summary, only 20 deep", [*plain, "deep20", "torchinfo"], timeout=120))
    sec = "8,000 modules"
    wide = Target("≤ 1.2×", 1.2)
    out += [
        Case("wide-tree", sec, "netinspect tree wide8000", [*ni, "tree", f"{models}/wide8000.yaml"], wide),
        Case(
            "wide-shared",
            sec,
            "netinspect shared --json wide8000",
            [*ni, "shared", "--json", f"{models}/wide8000.yaml"],
            wide,
            json_stdout=True,
        ),
        Case("wide-plain-print", sec, "plain torch: print(model) wide8000", [*plain, "wide8000", "print"]),
        Case("wide-plain-params", sec, "plain torch: named_parameters loop wide8000", [*plain, "wide8000", "params"]),
    ]
    if torchinfo:
        out.append(Case("wide-torchinfo", sec, "torchinfo summary wide8000", [*plain, "wide8000", "torchinfo"], timeout=300))
    if not quick:
        sec = "init, GPT-2-XL shape (1.56B params)"
        for kind, scheme in (("uniform", UNIFORM), ("normal", NORMAL)):
            out.append(
                Case(
                    f"init-{kind}",
                    sec,
                    f'netinspect init gpt2-xl --scheme "{scheme}" --param "*" --json',
                    [*phases, "init", INIT_MODEL, "--scheme", scheme, "--param", "*", "--json"],
                    json_stdout=True,
                    heavy=True,
                    timeout=900,
                )
            )
            out.append(
                Case(
                    f"flat-{kind}",
                    sec,
                    f"plain torch: {kind}_ on one flat tensor",
                    [*plain, "gpt2-xl", f"flat-{kind}"],
                    heavy=True,
                    timeout=900,
                )
            )
        out.append(
            Case(
                "init-plain",
                sec,
                "plain torch: build on cpu, uniform_ each parameter",
                [*plain, "gpt2-xl", "init-uniform"],
                heavy=True,
                timeout=900,
            )
        )
    return out


# --- running -------------------------------------------------------------------------------------


def child_env(keep_env: bool, pycache: Path) -> tuple[dict[str, str], str]:
    env = dict(os.environ)
    if keep_env:
        return env, "environment as given"
    notes = []
    for var in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"):
        if env.pop(var, None) is not None:
            notes.append(f"{var} unset")
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    notes.append(f"bytecode cached under {pycache}")
    env.pop("NETINSPECT_AVAILABLE_BYTES", None)
    return env, "; ".join(notes)


def run_once(case: Case, env: dict[str, str], workdir: Path) -> Sample:
    out_path, err_path = workdir / "stdout", workdir / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(case.argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(case.timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    proc.returncode = rc
    bench: dict[str, Any] = {}
    err_text = err_path.read_text(errors="replace")
    for line in err_text.splitlines():
        if line.startswith("BENCH "):
            try:
                fields = json.loads(line[6:])
            except ValueError:
                continue
            for k, v in fields.items():
                both_numbers = isinstance(v, (int, float)) and isinstance(bench.get(k), (int, float))
                bench[k] = bench[k] + v if both_numbers else v
    output_ok = True
    if case.json_stdout and rc == case.expect_rc == 0:
        try:
            doc = json.loads(out_path.read_text())
            if case.key.startswith("init-"):
                bench["numel"] = sum(_prod(p["shape"]) for p in doc["parameters"])
        except (ValueError, KeyError, TypeError):
            output_ok = False
    tail = "\n".join(line for line in err_text.splitlines() if not line.startswith("BENCH "))[-600:]
    return Sample(wall, usage.ru_maxrss, rc, bench, output_ok, tail)


def _prod(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def run_all(selected: list[Case], repeat: int, init_repeat: int, warmup: bool, env: dict[str, str], seed: int) -> dict[str, Result]:
    results = {c.key: Result(c) for c in selected}
    with tempfile.TemporaryDirectory(prefix="netinspect-bench-") as tmp:
        workdir = Path(tmp)
        if warmup:
            light = [c for c in selected if not c.heavy]
            progress(f"warm-up: {len(light)} cases once (not counted)")
            for c in light:
                run_once(c, env, workdir)
        rng = random.Random(seed)
        for r in range(repeat):
            batch = [c for c in selected if not c.heavy or r < init_repeat]
            rng.shuffle(batch)
            started = time.perf_counter()
            for i, c in enumerate(batch):
                progress(f"round {r + 1}/{repeat}  {i + 1}/{len(batch)}  {c.label}")
                results[c.key].samples.append(run_once(c, env, workdir))
            progress(f"round {r + 1}/{repeat} took {time.perf_counter() - started:.0f} s", end="\n")
    return results


def progress(text: str, end: str = "") -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + text[:150] + end)
    elif end:
        sys.stderr.write(text + end)
    sys.stderr.flush()


# --- the machine ---------------------------------------------------------------------------------


def machine(env: dict[str, str]) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    mem = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            mem[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    probe = "import torch, yaml; print(torch.__version__, torch.get_num_threads(), yaml.__with_libyaml__)"
    try:
        tv, threads, libyaml = subprocess.run([PY, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout.split()
    except (subprocess.CalledProcessError, ValueError):
        tv, threads, libyaml = "?", "?", "?"
    versions = []
    for dist in ("netinspect", "typer", "rich", "PyYAML", "torchinfo"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout
        commit += " (with uncommitted changes)" if dirty.strip() else ""
    except OSError:
        commit = "?"
    gib = 1024**3
    return [
        f"machine: {cpu}, {cores} cores, {mem.get('MemTotal', 0) / gib:.1f} GiB RAM ({mem.get('MemAvailable', 0) / gib:.1f} GiB available)",
        f"software: Python {platform.python_version()}, torch {tv} ({threads} threads), libyaml {libyaml}, " + ", ".join(versions),
        f"netinspect commit: {commit or '?'}; date: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


# --- the report ----------------------------------------------------------------------------------


def verdict(res: Result, torch_wall: float, torch_rss: float, results: dict[str, Result] | None = None) -> str:
    c = res.case
    if any(s.rc != c.expect_rc for s in res.samples):
        return f"FAIL (exit {'/'.join(map(str, res.rcs))}, expected {c.expect_rc})" if c.target or c.expect_rc else "error"
    if not all(s.output_ok for s in res.samples):
        return "FAIL (stdout is not the JSON expected)"
    t = c.target
    if t is None:
        return ""
    ratio = res.wall / torch_wall
    allowed = t.ratio
    if t.plus is not None:
        other = (results or {}).get(t.plus[0])
        extra = other.bench_median(t.plus[1]) if other is not None else None
        if extra is None:
            return f"FAIL (no {t.plus[1]} from {t.plus[0]})"
        allowed += extra / torch_wall
    why = []
    if ratio > allowed:
        why.append(f"{ratio:.2f}× > {allowed:.2f}×")
    if t.rss_extra_mib is not None and res.rss_mib - torch_rss > t.rss_extra_mib:
        why.append(f"RSS +{res.rss_mib - torch_rss:.0f} MiB")
    return "FAIL (" + ", ".join(why) + ")" if why else "pass"


def render(rows: list[list[str]], headers: list[str], markdown: bool, right: set[int]) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(headers, *rows, strict=False)]

    def fmt(r: list[str]) -> str:
        return "  ".join(x.rjust(w) if i in right else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths, strict=False))).rstrip()

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *[fmt(r) for r in rows]])


def main_table(results: dict[str, Result], markdown: bool) -> tuple[str, list[str]]:
    base = results["torch"]
    tw, trss = base.wall, base.rss_mib
    headers = ["case", "median s", "min–max s", "× import torch", "peak RSS MiB", "Δ RSS MiB", "exit", "target", "result"]
    rows, failed = [], []
    section = None
    for res in results.values():
        if not res.samples:
            continue
        c = res.case
        if c.section != section:
            section = c.section
            if markdown:
                rows.append([f"**{section}**"] + [""] * (len(headers) - 1))
            else:
                rows.append([f"[{section}]"] + [""] * (len(headers) - 1))
        v = verdict(res, tw, trss, results)
        if v.startswith("FAIL"):
            failed.append(f"{c.label}: {v}")
        label = f"`{c.label}`" if markdown and c.label.startswith(("netinspect", "python")) else c.label
        rows.append(
            [
                label,
                f"{res.wall:.2f}",
                f"{min(x.wall for x in res.samples):.2f}–{max(x.wall for x in res.samples):.2f}",
                f"{res.wall / tw:.2f}×",
                f"{res.rss_mib:.0f}",
                f"{res.rss_mib - trss:+.0f}" if c.key != "torch" else "",
                "/".join(map(str, res.rcs)),
                c.target.text if c.target else "",
                v,
            ]
        )
    return render(rows, headers, markdown, {1, 2, 3, 4, 5}), failed


def _f(x: float | None, fmt: str, suffix: str = "") -> str:
    return "?" if x is None else f"{x:{fmt}}{suffix}"


def init_table(results: dict[str, Result], markdown: bool) -> tuple[str, list[str]]:
    """Elements per second of each init, against the same scheme on one flat tensor (issue: ≥ 0.9×).

    The bar is judged against the flat tensor allocated and filled in one go, as a model's fresh
    parameters are; the rate on already-touched pages (the RNG alone) is shown beside it.
    """
    failed: list[str] = []
    numel = None
    for key in ("flat-uniform", "flat-normal", "init-plain", "init-uniform"):
        res = results.get(key)
        if res and res.samples:
            numel = numel or res.bench_median("numel")
    if numel is None:
        return "", failed
    tw = results["torch"].wall
    headers = [
        "case",
        "whole command s",
        "× import torch",
        "build / materialise s",
        "init s",
        "stats s",
        "init Melem/s",
        "vs flat (allocate + fill)",
        "vs flat (pages touched)",
        "target",
        "result",
    ]
    rows = []

    def row(
        label: str,
        res: Result | None,
        build: float | None,
        init: float | None,
        stats: float | None,
        fresh: float | None,
        warm: float | None,
        target: str = "",
        verdict: str = "",
    ) -> list[str]:
        rate = numel / init if init else None
        return [
            label,
            _f(res.wall, ".1f") if res else "",
            _f(res.wall / tw, ".1f", "×") if res else "",
            _f(build, ".2f") if build is not None else "",
            _f(init, ".2f"),
            _f(stats, ".2f") if stats is not None else "",
            _f(rate / 1e6 if rate else None, ".0f"),
            _f(fresh / init if fresh and init else None, ".2f", "×") if fresh else "",
            _f(warm / init if warm and init else None, ".2f", "×") if warm else "",
            target,
            verdict,
        ]

    for kind in ("uniform", "normal"):
        flat, ni = results.get(f"flat-{kind}"), results.get(f"init-{kind}")
        if not flat or not flat.samples:
            continue
        fresh, warm = flat.bench_median("init_s"), flat.bench_median("warm_s")
        rows.append(row(f"plain torch: {kind}_ on one flat tensor, allocate + fill", flat, None, fresh, None, fresh, warm))
        if warm:
            rows.append(row(f"plain torch: {kind}_ on the same flat tensor again (pages touched)", None, None, warm, None, fresh, warm))
        if ni and ni.samples:
            init_s = ni.bench_median("init_s")
            ok = all(s.rc == 0 and s.output_ok for s in ni.samples)
            ratio = fresh / init_s if fresh and init_s else None
            if not ok:
                v = f"FAIL (exit {'/'.join(map(str, ni.rcs))})"
            elif ratio is None:
                v = "FAIL (no timing)"
            else:
                v = "pass" if ratio >= 0.9 else f"FAIL ({ratio:.2f}× < 0.9×)"
            if v != "pass":
                failed.append(f"netinspect init {kind} rate vs one flat tensor: {v}")
            label = f"netinspect init --scheme {kind} --param '*' --json"
            rows.append(row(label, ni, ni.bench_median("materialise_s"), init_s, ni.bench_median("stats_s"), fresh, warm, "≥ 0.9× flat", v))
    plain = results.get("init-plain")
    if plain and plain.samples:
        flat = results.get("flat-uniform")
        fresh = flat.bench_median("init_s") if flat and flat.samples else None
        warm = flat.bench_median("warm_s") if flat and flat.samples else None
        label = "plain torch: build on cpu (default init), then uniform_ each parameter"
        rows.append(row(label, plain, plain.bench_median("build_s"), plain.bench_median("init_s"), None, fresh, warm))
    title = f"Init throughput on {INIT_MODEL} ({int(numel):,} unique float32 elements, {numel * 4 / 1e9:.1f} GB), medians:"
    return title + "\n\n" + render(rows, headers, markdown, set(range(1, 9))), failed


def report(results: dict[str, Result], header: list[str], facts: list[str], markdown: bool) -> int:
    """Print the machine, the tables and the targets missed; 1 when a target is missed."""
    print("\n".join(("- " + h if markdown else h) for h in [*header, *facts]))
    print()
    table, failed = main_table(results, markdown)
    print(table)
    itable, ifailed = init_table(results, markdown)
    if itable:
        print()
        print(itable)
    failed += ifailed
    print()
    if failed:
        print("**Targets missed:**" if markdown else "Targets missed:")
        for f in failed:
            print(f"- {f}")
    else:
        print("Every target passes.")
    for r in results.values():
        bad = [s for s in r.samples if s.rc != r.case.expect_rc]
        if bad:
            print(f"\n{r.case.label} exited {bad[0].rc} (expected {r.case.expect_rc}); stderr ends:\n{bad[0].stderr_tail}")
    return 1 if failed else 0


def save(path: Path, results: dict[str, Result], header: list[str], facts: list[str]) -> None:
    doc = {
        "machine": header,
        "facts": facts,
        "cases": [
            {
                "key": r.case.key,
                "label": r.case.label,
                "argv": r.case.argv,
                "samples": [
                    {
                        "wall": s.wall,
                        "rss_kib": s.rss_kib,
                        "rc": s.rc,
                        "bench": s.bench,
                        "output_ok": s.output_ok,
                        "stderr_tail": s.stderr_tail,
                    }
                    for s in r.samples
                ],
            }
            for r in results.values()
        ],
    }
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def load(path: Path) -> tuple[dict[str, Result], list[str], list[str]]:
    """A run saved with --json-out, matched to today's case definitions by key."""
    doc = json.loads(path.read_text())
    known = {c.key: c for c in cases(quick=False)}
    results: dict[str, Result] = {}
    for item in doc["cases"]:
        case = known.get(item["key"])
        if case is None:
            continue
        res = Result(case)
        for s in item["samples"]:
            res.samples.append(
                Sample(s["wall"], s["rss_kib"], s["rc"], s.get("bench", {}), s.get("output_ok", True), s.get("stderr_tail", ""))
            )
        results[case.key] = res
    return results, doc.get("machine", []), doc.get("facts", [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--repeat", type=int, default=5, help="rounds (default 5); the median is reported")
    ap.add_argument("--init-repeat", type=int, default=None, help="rounds that include the 1.5B init cases (default: --repeat)")
    ap.add_argument("--quick", action="store_true", help="one round, skip the 1.5B-parameter init")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for the README)")
    ap.add_argument("--only", action="append", default=[], help="run only cases whose key or label contains TEXT (repeatable)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the uncounted warm-up round")
    ap.add_argument(
        "--keep-env",
        action="store_true",
        help="run children in this environment unchanged (default: unset "
        "PYTHONUNBUFFERED/PYTHONDONTWRITEBYTECODE, cache bytecode under the temp dir)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the shuffled case order")
    ap.add_argument("--json-out", type=Path, help="also write every sample to FILE as JSON")
    ap.add_argument("--from-json", type=Path, help="run nothing: print the tables of a run saved with --json-out")
    args = ap.parse_args(argv)
    if args.from_json:
        results, header, facts = load(args.from_json)
        if "torch" not in results:
            ap.error(f"{args.from_json} has no import-torch baseline")
        return report(results, header, facts, args.markdown)
    repeat = 1 if args.quick else max(1, args.repeat)
    init_repeat = repeat if args.init_repeat is None else min(repeat, max(1, args.init_repeat))

    if subprocess.run([PY, str(BENCH / "make_models.py"), "--check"], capture_output=True).returncode != 0:
        subprocess.run([PY, str(BENCH / "make_models.py")], check=True)

    selected = cases(args.quick)
    if args.only:
        selected = [c for c in selected if c.key == "torch" or any(t in c.key or t in c.label for t in args.only)]
    env, env_note = child_env(args.keep_env, Path(tempfile.gettempdir()) / "netinspect-bench-pycache")
    header = machine(env)
    started = time.perf_counter()
    results = run_all(selected, repeat, init_repeat, not args.no_warmup, env, args.seed)
    elapsed = time.perf_counter() - started

    rounds = f"{repeat} interleaved rounds" + (f" ({init_repeat} for the init cases)" if init_repeat != repeat and not args.quick else "")
    facts = [
        f"{rounds}, median wall time; peak RSS is the largest of the rounds; "
        f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; the run took {elapsed / 60:.1f} min",
        f"children: {env_note}; stdout to a file (not a terminal: plain text, no progress bar)",
    ]
    if not have("torchinfo"):
        facts.append("torchinfo is not installed: its rows are skipped (pip install torchinfo to add them)")
    if args.json_out:
        save(args.json_out, results, header, facts)
    return report(results, header, facts, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
