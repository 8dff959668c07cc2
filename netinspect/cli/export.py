"""``code``: the model as a standalone Python file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import AllowOpt, DebugOpt, DtypeOpt, ModelArg, SeedOpt, app, handled, make, options


@app.command()
@handled
def code(
    model: ModelArg = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write the file here (atomically) instead of stdout.", show_default=False)
    ] = None,
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    allow: AllowOpt = None,
    debug: DebugOpt = False,
) -> None:
    """The model as a standalone Python file (torch only): its classes, build(seed, device), the init rules as torch.nn.init calls."""
    built = make(model, options("meta", dtype, seed, allow, need="structure"), False)
    from netinspect.codegen import generate
    from netinspect.files import atomic_write
    from netinspect.layers import parse_allow

    text = generate(built, parse_allow(list(allow or ()), built.spec.granted_functions()))
    if output is None:
        sys.stdout.write(text)
        return

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(output, write, flag="--output")
    sys.stderr.write(f"wrote {output}\n")
