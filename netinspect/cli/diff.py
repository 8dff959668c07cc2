"""``netinspect diff A B``: two models, configs, weights files or checkpoints, key by key."""

from __future__ import annotations

import functools
from typing import Annotated

import typer

from netinspect import session

from .app import AllowOpt, DebugOpt, DtypeOpt, JsonOpt, Progress, SeedOpt, app, handled, options, report


@app.command()
@handled
def diff(
    a: Annotated[str, typer.Argument(help="A model file, built-in config, weights file or checkpoint.", show_default=False)],
    b: Annotated[str, typer.Argument(help="The same kinds as A.", show_default=False)],
    values: Annotated[bool, typer.Option("--values", help="Compare values too (a model's come from its seeded build on cpu).")] = False,
    atol: Annotated[
        float, typer.Option("--atol", help="With --values: the largest absolute difference that counts as equal.", min=0.0)
    ] = 0.0,
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    allow: AllowOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Keys only in A, only in B, changed shape or dtype (and values); hints on why a checkpoint does not load. Exit 1 when different."""
    # a model is built on meta (nothing allocated) unless its values are compared
    opts = options("cpu" if values else "meta", dtype, seed, allow, need="values" if values else "structure")
    tables = []
    for side in (a, b):
        with Progress() as progress:
            tables.append(session.tensor_table(side, opts, report=functools.partial(report, as_json=as_json), progress=progress))
    from netinspect import render
    from netinspect.diff import compare

    result = compare(tables[0], tables[1], names=(a, b), values=values, atol=atol)
    if as_json:
        render.emit_json(render.diff_json(result))
    else:
        render.emit(render.diff_lines(result))
    if not result.equal:
        raise typer.Exit(1)
