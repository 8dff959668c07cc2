"""Long mutation fuzzing of the built-in configs (the CI run in tests/test_fuzz.py is a sample of this).

    python bench/fuzz_long.py                 # 10,000 cases, seed 0
    python bench/fuzz_long.py 50000 --seed 7  # more, another seed
    python bench/fuzz_long.py 200 --subprocess 20   # also run every 10th... (see --subprocess)

Each case takes a config from configs/, applies 1-3 random edits (delete, duplicate or swap
lines and tokens, insert characters, change numbers or indentation; the same ``mutate`` as the
tests), and runs one netinspect command on it in-process through typer's CliRunner. A case
fails when the exit code is not 0, 1, 3 or 4, when the output holds a traceback or an
"internal error", when an exit 3 is not located at FILE:LINE:COL, or when it takes longer than
``--slow`` seconds. Every failing mutant is saved under ``--out`` (default
/tmp/netinspect-fuzz) with the command and the problem, and a summary is printed: cases, exit
code histogram, failures by kind, the slowest cases.
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_fuzz import CONFIG_NAMES, check_run, command_for, config_texts, mutate, run_subprocess  # noqa: E402
from typer.testing import CliRunner  # noqa: E402, TID251

from netinspect.cli import app  # noqa: E402


class Stuck(BaseException):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Stuck()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="?", type=int, default=10_000, help="number of mutants (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/netinspect-fuzz"))
    parser.add_argument("--slow", type=float, default=10.0, help="a case slower than this many seconds counts as a failure")
    parser.add_argument("--timeout", type=float, default=120.0, help="stop a case after this many seconds")
    parser.add_argument("--subprocess", type=int, default=0, metavar="N", help="also run N of the cases as real processes")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))  # as the console entry point does
    args.out.mkdir(parents=True, exist_ok=True)
    texts = config_texts()
    rnd = random.Random(args.seed)
    runner = CliRunner()
    runner.invoke(app, ["validate", "mlp"])  # import torch before timing anything
    codes: collections.Counter[int] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    per_command: collections.Counter[str] = collections.Counter()
    failures: list[tuple[int, str, list[str], str, float]] = []
    slowest: list[tuple[float, int, str, list[str]]] = []
    signal.signal(signal.SIGALRM, _alarm)
    start = time.monotonic()
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    for i in range(args.cases):
        name = rnd.choice(CONFIG_NAMES)
        text = mutate(texts[name], rnd)
        cmd = command_for(name, rnd)
        path = work / f"{name}.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            result = runner.invoke(app, [cmd[0], str(path), *cmd[1:]], catch_exceptions=True)
            code = result.exit_code
            problem = check_run(path, code, result.stdout, result.stderr, result.exception)
        except Stuck:
            code, problem = -1, f"still running after {args.timeout:.0f} s"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        took = time.monotonic() - t0
        if problem is None and took > args.slow:
            problem = f"slow: {took:.1f} s"
        codes[code] += 1
        per_command[cmd[0]] += 1
        slowest = sorted(slowest + [(took, i, name, cmd)], reverse=True)[:5]
        if problem is not None:
            kind = problem.split(":")[0]
            kinds[kind] += 1
            saved = args.out / f"case{i:06d}-{name}.yaml"
            saved.write_bytes(text.encode("utf-8", "surrogatepass"))
            saved.with_suffix(".txt").write_text(f"netinspect {cmd[0]} FILE {' '.join(cmd[1:])}\n{problem}\n", encoding="utf-8")
            failures.append((i, name, cmd, problem, took))
            if not args.quiet:
                print(f"case {i}: {name}: netinspect {' '.join(cmd)}: {problem[:300]} -> {saved}", flush=True)
        if not args.quiet and (i + 1) % 1000 == 0:
            print(f"... {i + 1:,} cases, {len(failures)} failures, {time.monotonic() - start:.0f} s", flush=True)

    sub_fail = 0
    if args.subprocess:
        for k in range(args.subprocess):
            name = rnd.choice([n for n in CONFIG_NAMES])
            text = mutate(texts[name], rnd)
            cmd = command_for(name, rnd)
            path = work / f"sub-{name}.yaml"
            path.write_bytes(text.encode("utf-8", "surrogatepass"))
            out = run_subprocess(path, cmd, timeout=args.timeout)
            if out.problem is not None:
                sub_fail += 1
                saved = args.out / f"sub{k:04d}-{name}.yaml"
                saved.write_bytes(text.encode("utf-8", "surrogatepass"))
                print(f"subprocess case {k}: {name}: netinspect {' '.join(cmd)}: {out.problem[:300]} -> {saved}")

    elapsed = time.monotonic() - start
    print()
    print(
        f"cases: {args.cases:,} in-process (seed {args.seed}) in {elapsed:.0f} s ({args.cases / elapsed:.0f}/s)"
        + (f"; {args.subprocess} as processes, {sub_fail} failed" if args.subprocess else "")
    )
    print("commands: " + ", ".join(f"{c} {n:,}" for c, n in per_command.most_common()))
    print("exit codes: " + ", ".join(f"{c}: {n:,}" for c, n in sorted(codes.items())))
    print(f"failures: {len(failures):,}" + ("" if not failures else " (" + ", ".join(f"{k}: {n}" for k, n in kinds.most_common()) + ")"))
    for i, name, cmd, problem, took in failures[:20]:
        print(f"  case {i} ({name}, netinspect {' '.join(cmd)}, {took:.1f} s): {problem[:200]}")
    if failures:
        print(f"failing mutants saved under {args.out}")
    print("slowest: " + "; ".join(f"case {i} {name} {' '.join(cmd)} {t:.2f} s" for t, i, name, cmd in slowest))
    return 1 if failures or sub_fail else 0


if __name__ == "__main__":
    raise SystemExit(main())
