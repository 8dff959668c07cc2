"""Run ``netinspect ARGS...`` exactly as the console script does, timing its phases from inside.

Usage: python bench/phases.py ARGS...   (the arguments of ``netinspect``)

Wraps netinspect's phases (see WRAPPED), each where the code that calls it looks it up:
among them ``netinspect.build.build`` (meta build + memory check + materialisation + init),
``materialise`` (allocation + the default init that no rule overwrites), ``apply_plan`` (the
init rules) and ``netinspect.queries.init_report`` (per-parameter statistics), and writes a line
``BENCH {"phase": seconds}`` on stderr as each call finishes (a phase called twice gives two
lines, which bench/run.py adds up). A name that no longer exists is an error (exit 2), so a
rename cannot silently drop a phase from the figures. Importing the wrapped modules (torch
included: do not use this for the torch-free commands) is ``imports_s``. The command itself is
``netinspect.cli.main`` (which ends the process with ``os._exit``).
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

WRAPPED = (
    ("netinspect.session", "load_spec", "parse_s"),
    ("netinspect.build", "build", "build_s"),
    ("netinspect.build.pipeline", "resolve_classes", "resolve_s"),
    ("netinspect.build.assemble", "Assembler.run", "assemble_s"),
    ("netinspect.build.pipeline", "plan_rules", "plan_s"),
    ("netinspect.build.pipeline", "materialise", "materialise_s"),
    ("netinspect.build.pipeline", "apply_plan", "init_s"),
    ("netinspect.queries", "init_report", "stats_s"),
    ("netinspect.queries", "tree", "query_tree_s"),
    ("netinspect.queries", "params", "query_params_s"),
    ("netinspect.queries", "shared", "query_shared_s"),
    ("netinspect.forward_pass", "forward", "forward_s"),
    ("netinspect.render", "tree_lines", "render_s"),
    ("netinspect.render", "emit", "emit_s"),
    ("netinspect.render", "emit_json", "emit_s"),
)


def _timed(func: Callable[..., Any], key: str) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            sys.stderr.write("BENCH " + json.dumps({key: time.perf_counter() - t}) + "\n")
            sys.stderr.flush()

    return wrapper


def main() -> None:
    start = time.perf_counter()
    missing = []
    for module_name, attr, key in WRAPPED:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(f"{module_name}.{attr}")
            continue
        owner: Any = module
        *outer, name = attr.split(".")
        for part in outer:
            owner = getattr(owner, part, None)
        func = getattr(owner, name, None)
        if owner is None or not callable(func):
            missing.append(f"{module_name}.{attr}")
            continue
        setattr(owner, name, _timed(func, key))
    if missing:
        sys.stderr.write(f"bench/phases.py: no such phase (renamed?): {', '.join(missing)}; update WRAPPED\n")
        raise SystemExit(2)
    fields: dict[str, Any] = {"imports_s": time.perf_counter() - start}
    sys.stderr.write("BENCH " + json.dumps(fields) + "\n")
    sys.stderr.flush()
    from netinspect.cli import main as cli_main

    sys.argv = ["netinspect", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
