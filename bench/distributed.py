"""Sharded ``init`` under torchrun: wall time and each rank's peak RSS at world sizes 1, 2 and 4 (CPU,
gloo), beside ``netinspect init`` in one process, on a ~1B-parameter model (bench/models/gpt-1b.yaml).

Usage: python bench/distributed.py [--model FILE] [--worlds 1,2,4] [--format dcp|safetensors]
                                   [--check] [--out DIR] [--markdown]

Each case is a fresh launch that saves the model (``--save DIR``; ``--format``, default dcp) into
``--out`` (default: a temporary folder, removed at the end). Peak RSS is each process's own
``ru_maxrss``, recorded as it exits (the rank's worker runs this file with ``--worker``). The
"shards" column is what a rank must hold at least: the model's parameter bytes over the world size;
"RSS − shards" is the rest (torch itself, one step's full tensors, the exchange buffers). Times are
relative to one process writing the same directory format.
``--check`` compares every tensor of every sharded save with the one-process ``.safetensors``
(bit for bit), one tensor at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "bench" / "models" / "gpt-1b.yaml"


def worker() -> None:
    """One rank (or the single process): run netinspect, and record its peak RSS and exit code."""
    record = Path(os.environ["BENCH_RECORD"])
    real_exit = os._exit

    def leave(code: int) -> None:
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        line = json.dumps({"rank": int(os.environ.get("RANK", "0")), "rss_mib": rss_kib / 1024, "code": code})
        with open(record, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        real_exit(code)

    os._exit = leave  # type: ignore[assignment]  # netinspect's main() leaves through os._exit
    from netinspect.cli import main

    sys.argv = ["netinspect", *sys.argv[2:]]
    main()


def run_case(label: str, cmd: list[str], record: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHELASTIC_")}
    env["BENCH_RECORD"] = str(record)
    record.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        raise SystemExit(f"{label}: exit {done.returncode}")
    ranks = sorted((json.loads(x) for x in record.read_text().splitlines()), key=lambda r: r["rank"])
    return {"case": label, "wall_s": wall, "ranks": ranks}


def check(reference: Path, folder: Path, fmt: str) -> int:
    """Compare every tensor of a sharded save with the one-process .safetensors; returns how many."""
    import torch
    from safetensors import safe_open

    with safe_open(str(reference), framework="pt") as ref:
        keys = list(ref.keys())
        if fmt == "safetensors":
            index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
            for k in keys:
                with safe_open(str(folder / index[k]), framework="pt") as f:
                    if not torch.equal(f.get_tensor(k), ref.get_tensor(k)):
                        raise SystemExit(f"{folder}: {k} differs")
        else:
            import torch.distributed.checkpoint as dcp

            for k in keys:  # one tensor at a time: DCP reads just what the state dict asks for
                want = ref.get_tensor(k)
                got = {k: torch.empty_like(want)}
                dcp.load(got, checkpoint_id=str(folder), no_dist=True)
                if not torch.equal(got[k], want):
                    raise SystemExit(f"{folder}: {k} differs")
    return len(keys)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--worlds", default="1,2,4")
    parser.add_argument("--format", choices=("dcp", "safetensors"), default="dcp")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="netinspect-dist-"))
    out.mkdir(parents=True, exist_ok=True)
    record = out / "record.jsonl"
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    results = []
    try:
        ref = out / "one.safetensors"
        results.append(run_case("one process, .safetensors", [*me, "init", str(args.model), "--save", str(ref)], record))
        one_dir = out / "one"
        cmd = [*me, "init", str(args.model), "--save", str(one_dir), "--format", args.format]
        results.append(run_case(f"one process, --save DIR ({args.format})", cmd, record))
        shutil.rmtree(one_dir, ignore_errors=True)
        for world in (int(w) for w in args.worlds.split(",")):
            target = out / f"world{world}"
            shutil.rmtree(target, ignore_errors=True)
            launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}", "--no-python"]
            cmd = [*launch, *me, "init", str(args.model), "--save", str(target), "--format", args.format]
            results.append(run_case(f"torchrun world {world}, --save DIR ({args.format})", cmd, record))
            results[-1]["world"] = world
            if args.check:
                results[-1]["checked"] = check(ref, target, args.format)
            shutil.rmtree(target, ignore_errors=True)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    report(results, args.model, args.markdown)


def report(results: list[dict[str, object]], model: Path, markdown: bool) -> None:
    import torch

    from netinspect import session
    from netinspect.build import build

    spec = session.load_spec(str(model))
    param_bytes = build(spec, device=torch.device("meta")).bytes_needed
    base = float(results[1]["wall_s"])  # type: ignore[arg-type]
    rows = []
    for r in results:
        ranks = r["ranks"]
        assert isinstance(ranks, list)
        world = int(r.get("world", 1))  # type: ignore[call-overload]
        rss = [float(x["rss_mib"]) for x in ranks]
        shard = param_bytes / world / 2**20
        wall = float(r["wall_s"])  # type: ignore[arg-type]
        rows.append(
            (
                str(r["case"]),
                f"{wall:.1f}",
                f"{wall / base:.2f}×",
                " / ".join(f"{x:,.0f}" for x in rss),
                f"{shard:,.0f}",
                f"{max(rss) - shard:,.0f}",
                f"{r['checked']} tensors" if "checked" in r else "",
            )
        )
    head = ("case", "wall s", "× one process", "peak RSS per rank, MiB", "shards MiB", "RSS − shards", "bit-identical")
    title = f"{spec.name}: {param_bytes / 2**30:.2f} GiB of parameters; torch {torch.__version__}, {os.cpu_count()} CPUs"
    if markdown:
        print(title + "\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    print(title)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
