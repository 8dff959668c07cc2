"""Profile one netinspect command with cProfile, imports included, and print where the time goes.

Usage: python bench/prof.py [--top N] [--sort cumulative|tottime] [--out FILE.prof] -- ARGS...
       (ARGS: the arguments of ``netinspect``, e.g. ``-- tree bench/models/wide8000.yaml``)

Runs ``netinspect.cli.app`` in this process (as the console script does, with the garbage
collector off, but without its final ``os._exit``) under cProfile, then prints the wall time
of the whole command and the top functions. stdout of the command goes to /dev/null.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    ap.add_argument("--out", help="also save the raw profile (for snakeviz, pstats)")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args()
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    gc.disable()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    sys.argv = ["netinspect", *args]
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    prof = cProfile.Profile()
    t = time.perf_counter()
    code: object = 0
    prof.enable()
    try:
        from netinspect.cli import app

        app()
    except SystemExit as exc:
        code = exc.code
    finally:
        prof.disable()
        wall = time.perf_counter() - t
        sys.stdout.close()
        sys.stdout = real_stdout
    if ns.out:
        prof.dump_stats(ns.out)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats(ns.sort).print_stats(ns.top)
    print(f"netinspect {' '.join(args)}: exit {code}, {wall:.2f} s under cProfile (imports included)")
    print(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
