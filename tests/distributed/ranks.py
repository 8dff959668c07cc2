"""Run on every rank of a torchrun launch: several ``init`` jobs in one process group.

``python -m torch.distributed.run --nproc-per-node N --standalone tests/distributed/ranks.py OUT CASES``
where CASES is a JSON file: a list of {"name", "model", "args": {scheme, target, param, bias, types,
set, dtype, seed}, "save": "dcp" | "safetensors" | "file" | null}. Each case saves under OUT/NAME
(OUT/NAME.safetensors for "file") and rank 0 writes OUT/NAME.json: {"code", "problems", "rows"}.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from netinspect import session
from netinspect.distributed import launched
from netinspect.distributed.group import Group
from netinspect.distributed.job import InitRequest, execute
from netinspect.weights import parse_edit


def request(case: dict[str, Any], out: Path) -> InitRequest:
    a = case.get("args", {})
    extra = session.cli_rules(a.get("scheme"), a.get("target", "*"), a.get("param", "weight"), a.get("bias"), a.get("types", []))
    spec = session.load_spec(case["model"])
    kind = case.get("save")
    target = None if kind is None else out / (case["name"] + (".safetensors" if kind == "file" else ""))
    edits = tuple(parse_edit(s) for s in a.get("set", []))
    fmt = "safetensors" if kind == "file" else (kind or "dcp")
    return InitRequest(spec, a.get("dtype"), a.get("seed"), {}, extra, edits, target, fmt)


def main() -> None:
    out, cases = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    launch = launched()
    assert launch is not None, "run me under torchrun"
    group = Group.start(launch, "cpu")
    for case in cases:
        outcome = execute(group, lambda case=case: request(case, out), launch.local_world)
        if group.rank == 0:
            rows = [dataclasses.asdict(r) for r in outcome.rows or []]
            problems = [p.format() for p in outcome.problems]
            (out / (case["name"] + ".json")).write_text(json.dumps({"code": outcome.code, "problems": problems, "rows": rows}))
    group.barrier()
    group.close()


if __name__ == "__main__":
    main()
    # leave as netinspect's own entry point does (cli.main: flush, then os._exit): the interpreter's
    # teardown can race gloo's and the checkpoint writer's native threads ("terminate called without
    # an active exception", SIGABRT), after every file was written and every rank agreed
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
