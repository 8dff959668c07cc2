"""The commands that build a model and show it: tree, params, state-dict, init, shared, forward, validate."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from netinspect import session
from netinspect.errors import ExitCode, NetinspectError, Problem, SpecError, UsageError, did_you_mean

from . import checkpoint

if TYPE_CHECKING:
    from netinspect.distributed import Launch

from .app import (
    AllowOpt,
    DebugOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelArg,
    ModuleOpt,
    PartialOpt,
    SeedOpt,
    WeightsOpt,
    app,
    handled,
    load_spec,
    make,
    options,
    report,
)


@app.command()
@handled
def tree(
    model: ModelArg = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Show N levels below the root.", min=0, show_default=False)] = None,
    repr_: Annotated[bool, typer.Option("--repr", help="Print exactly PyTorch's print(model).")] = False,
    expand: Annotated[bool, typer.Option("--expand", help="Show every node (no collapsing of identical siblings).")] = False,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    allow: AllowOpt = None,
    weights: WeightsOpt = None,
    partial: PartialOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The module tree: child name, class, constructor arguments, own and subtree parameter counts, sharing."""
    if session.is_checkpoint(model):
        checkpoint.no_build_flags(device, dtype, seed, allow, weights, partial)
        return checkpoint.tree(str(model), depth, expand, repr_, as_json)
    built = make(model, options(device, dtype, seed, allow, weights=weights, partial=partial, need="structure"), as_json)
    if repr_:
        sys.stdout.write(str(built.module) + "\n")
        return
    from netinspect import queries, render

    node = queries.tree(built)
    if as_json:
        session.check_shared_with({id(n.paths): n.paths for n in queries.walk_tree(node)}.values(), "module", "nodes")
        render.emit_json({"model": built.spec.name, "device": str(built.device), "root": render.tree_json(node)})
    else:
        render.emit(render.tree_lines(built, node, depth, expand))


@app.command()
@handled
def params(
    model: ModelArg = None,
    module: ModuleOpt = None,
    shard: Annotated[
        Optional[int],
        typer.Option(
            "--shard", help="Also show what each of N ranks holds under FSDP2's fully_shard (dim-0 chunks).", min=1, show_default=False
        ),
    ] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    allow: AllowOpt = None,
    weights: WeightsOpt = None,
    partial: PartialOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Every parameter path: shape, dtype, device, requires_grad, numel, grad, shared-with; totals."""
    if session.is_checkpoint(model):
        checkpoint.no_build_flags(device, dtype, seed, allow, weights, partial)
        return checkpoint.params(str(model), module, as_json)
    built = make(model, options(device, dtype, seed, allow, weights=weights, partial=partial, need="storage"), as_json)
    from netinspect import queries, render

    target = queries.submodule(built.module, module) if module else built.module
    rows, totals = queries.params(target)
    sharded = None
    if shard is not None:
        from netinspect.analysis.memory import shard_params
        from netinspect.render import costs as render_costs

        sharded = shard_params(target, shard)
    if as_json:
        session.check_shared_with({id(r.paths): r.paths for r in rows}.values(), "Parameter", "rows")
        doc = render.params_json(built, rows, totals)
        if shard is not None and sharded is not None:
            doc["shard"] = render_costs.shard_json(shard, sharded)
        render.emit_json(doc)
    else:
        lines = render.params_lines(built, rows, totals, module)
        if shard is not None and sharded is not None:
            lines += render_costs.shard_lines(shard, sharded)
        render.emit(lines)


@app.command("state-dict")
@handled
def state_dict(
    model: ModelArg = None,
    key: Annotated[Optional[str], typer.Option("--key", "-k", help="Print this entry's values, e.g. 2.bias.", show_default=False)] = None,
    show_values: Annotated[bool, typer.Option("--values", help="Print every entry's values.")] = False,
    module: ModuleOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    allow: AllowOpt = None,
    weights: WeightsOpt = None,
    partial: PartialOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One row per state_dict() entry (parameters and persistent buffers); --key/--values print values."""
    if session.is_checkpoint(model):
        checkpoint.no_build_flags(device, dtype, seed, allow, weights, partial)
        return checkpoint.state_dict(str(model), key, show_values, module, as_json)
    if device.strip().lower() == "meta" and (key is not None or show_values):
        raise UsageError.at(None, "--key/--values need values, and the meta device has none", "use --device cpu (or cuda)")
    need = "values" if key is not None or show_values else "storage"
    built = make(model, options(device, dtype, seed, allow, weights=weights, partial=partial, need=need), as_json)
    from netinspect import queries, render

    target = queries.submodule(built.module, module) if module else built.module
    entries = queries.state_dict(target)
    if key is not None:
        chosen = [e for e in entries if e.key == key]
        if not chosen:
            raise UsageError.at(
                None,
                f"no state_dict key {key!r}",
                did_you_mean(key, [e.key for e in entries]) or "keys: " + ", ".join(e.key for e in entries[:10]),
            )
        entries = chosen
    with_values = key is not None or show_values
    if as_json:
        render.emit_json(render.state_json(built, entries, with_values))
    else:
        render.emit(render.state_lines(built, entries, with_values, key is not None))


class SaveFormat(str, Enum):
    """What ``init --save DIR`` writes."""

    dcp = "dcp"
    safetensors = "safetensors"


@app.command()
@handled
def init(
    model: ModelArg = None,
    scheme: Annotated[
        Optional[str],
        typer.Option(
            "--scheme",
            "-s",
            help='Scheme for --param, e.g. xavier, normal(std=0.01), "[uniform(-10, 10), mask_abs_below(5)]".',
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str, typer.Option("--target", "-t", help="Glob over module paths; covers each match's subtree (net[0].apply(f)).")
    ] = "*",
    param: Annotated[str, typer.Option("--param", "-p", help="Parameter name (glob) the --scheme sets.")] = "weight",
    bias: Annotated[Optional[str], typer.Option("--bias", help="Scheme for parameters named bias.", show_default=False)] = None,
    types: Annotated[
        Optional[list[str]], typer.Option("--types", help="Only modules of this class (repeatable), e.g. Linear.", show_default=False)
    ] = None,
    rules: Annotated[Optional[Path], typer.Option("--rules", help="A YAML file with a list of init rules.", show_default=False)] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help='Edit values: "0.weight[0,0]=42", "0.weight[:]+=1" (repeatable).', show_default=False),
    ] = None,
    save: Annotated[
        Optional[Path],
        typer.Option(
            "--save",
            help="Write the state_dict, atomically, to FILE (.safetensors or .pt) or to a directory DIR (see --format).",
            show_default=False,
        ),
    ] = None,
    save_format: Annotated[
        Optional[SaveFormat],
        typer.Option(
            "--format",
            help="For --save DIR: dcp (a torch.distributed.checkpoint, default) or safetensors (shards + model.safetensors.index.json).",
            show_default=False,
        ),
    ] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    allow: AllowOpt = None,
    weights: WeightsOpt = None,
    partial: PartialOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Apply the file's init rules, then --scheme/--bias, --rules and --set; print per-parameter statistics.

    Under torchrun it runs as one job over the ranks: each rank initialises only its shards, with
    the values one process gives, and --save DIR writes every rank's shards in parallel.
    """
    from netinspect.distributed import launched

    launch = launched()
    fmt = save_format.value if save_format is not None else None
    if launch is not None:
        rule = (scheme, target, param, bias, types or [])
        _init_distributed(launch, model, rule, rules, set_, save, fmt, device, dtype, seed, allow, weights, as_json, debug)
        return
    if device.strip().lower() == "meta":
        raise UsageError.at(None, "init needs values, and the meta device has none", "use --device cpu (or cuda)")
    directory = _save_kind(save, fmt, distributed=False)
    extra = session.cli_rules(scheme, target, param, bias, types or [])
    spec = load_spec(model, allow, as_json)
    if rules is not None:
        extra += session.rules_file(rules)
    from netinspect.weights import apply_edits, parse_edit, save_state

    edits = [parse_edit(s) for s in set_ or []]
    built = make(model, options(device, dtype, seed, allow, weights=weights, partial=partial, extra_rules=extra), as_json, spec)
    from netinspect import queries, render

    apply_edits(built, edits)
    report_rows = queries.init_report(built)
    if save is not None and directory:
        from netinspect.distributed.job import save_local

        save_local(built, save, fmt or "dcp")
    elif save is not None:
        save_state(built, save)
    if as_json:
        render.emit_json(render.init_json(built, report_rows))
    else:
        render.emit(render.init_lines(built, report_rows, save))


def _save_kind(save: Path | None, fmt: str | None, *, distributed: bool) -> bool:
    """Whether ``--save`` names a directory (no file suffix, or ``--format`` given); refuses the rest."""
    if save is None:
        if fmt is not None:
            raise UsageError.at(None, "--format applies to --save DIR", "e.g. --save out --format safetensors")
        return False
    files = (".safetensors",) if distributed else (".pt", ".pth", ".safetensors")
    if save.suffix in files:
        if fmt is not None:
            raise UsageError.at(
                None, f"--format applies to a directory, and --save {str(save)!r} is a file", "drop --format, or name a directory"
            )
        return False
    if save.suffix and fmt is None:
        if distributed and save.suffix in (".pt", ".pth"):
            raise UsageError.at(
                None,
                f"--save {str(save)!r}: under torchrun a .pt file would gather the whole model in one process",
                "save a directory (--format dcp or safetensors) or one .safetensors file",
            )
        raise UsageError.at(
            None, f"--save {str(save)!r}: unknown format", "use a .safetensors or .pt file name, or a directory (--format dcp|safetensors)"
        )
    return True


def _init_distributed(
    launch: Launch,
    model: str | None,
    cli_rule: tuple[str | None, str, str, str | None, list[str]],
    rules: Path | None,
    set_: list[str] | None,
    save: Path | None,
    fmt: str | None,
    device: str,
    dtype: str | None,
    seed: int | None,
    allow: list[str] | None,
    weights: Path | None,
    as_json: bool,
    debug: bool,
) -> None:
    """``init`` as rank ``launch.rank`` of a torchrun job: every rank does its part; rank 0 alone prints
    (the table for the whole model, or the error the ranks agreed on); all exit with the same code."""
    from netinspect.distributed import job

    first = launch.rank == 0

    def quiet(problems: list[Problem]) -> None:
        if first:
            report(problems, as_json)

    def prepare() -> job.InitRequest:
        if weights is not None:
            raise UsageError.at(None, "--weights is not available under torchrun", "load weights in one process (without torchrun)")
        directory = _save_kind(save, fmt, distributed=True)
        extra = session.cli_rules(*cli_rule)
        spec = session.load_spec(model, allow or (), quiet)
        if rules is not None:
            extra += session.rules_file(rules)
        from netinspect.layers import parse_allow
        from netinspect.weights import parse_edit

        edits = tuple(parse_edit(s) for s in set_ or [])
        fmt_ = (fmt or "dcp") if directory else "safetensors"
        return job.InitRequest(spec, session.parse_dtype(dtype), seed, parse_allow(list(allow or [])), extra, edits, save, fmt_)

    outcome = job.run(launch, device, prepare)
    if first:
        if outcome.code:
            if debug and outcome.trace:
                sys.stderr.write(outcome.trace)
            report(outcome.problems, as_json)
        elif outcome.built is not None and outcome.rows is not None:
            from netinspect import render

            if as_json:
                render.emit_json(render.init_json(outcome.built, outcome.rows))
            else:
                render.emit(render.init_lines(outcome.built, outcome.rows, save))
        sys.stdout.flush()
        sys.stderr.flush()
    outcome.finish()
    if outcome.code:
        raise typer.Exit(outcome.code)


@app.command()
@handled
def shared(
    model: ModelArg = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    allow: AllowOpt = None,
    weights: WeightsOpt = None,
    partial: PartialOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Each group of parameter paths that are one Parameter, and why (module reuse or tie)."""
    if session.is_checkpoint(model):
        checkpoint.no_build_flags(device, dtype, seed, allow, weights, partial)
        return checkpoint.shared(str(model), as_json)
    built = make(model, options(device, dtype, seed, allow, weights=weights, partial=partial, need="structure"), as_json)
    from netinspect import queries, render

    groups, unique, by_path = queries.shared(built)
    if as_json:
        render.emit_json(render.shared_json(built, groups, unique, by_path))
    else:
        render.emit(render.shared_lines(built, groups, unique, by_path))


@app.command()
@handled
def forward(
    model: ModelArg = None,
    input_: Annotated[
        Optional[list[str]],
        typer.Option("--input", "-i", help="Input shape, e.g. 2,4 (repeatable for several inputs).", show_default=False),
    ] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    allow: AllowOpt = None,
    weights: WeightsOpt = None,
    partial: PartialOpt = False,
    eval_: Annotated[bool, typer.Option("--eval", help="Run in model.eval() (default: training mode, as D2L's net(X)).")] = False,
    show_values: Annotated[bool, typer.Option("--values", help="With --json: the output's values however many there are.")] = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run the model on a seeded torch.rand input; print the output and each module's (and graph step's) output shape."""
    spec = load_spec(model, allow, as_json)
    inputs = session.parse_inputs(input_, spec)
    built = make(model, options(device, dtype, seed, allow, weights=weights, partial=partial), as_json, spec)
    from netinspect import forward_pass, render

    result = forward_pass.forward(built, inputs, train=not eval_)
    if as_json:
        render.emit_json(render.forward_json(built, result, all_values=show_values))
    else:
        render.emit(render.forward_lines(built, result))


@app.command()
@handled
def validate(
    models: Annotated[list[str], typer.Argument(help="Model files (or built-in config names) to check.")],
    allow: AllowOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check model files completely on the meta device (nothing is allocated); print every error, or ok."""
    results = []
    failed = False
    for model in models:
        problems: list[Problem] = []
        bad = False
        try:
            if session.is_checkpoint(model):
                checkpoint.validate(model)
                built = None
            else:
                built = make(model, options("meta", None, None, allow), as_json)
            if built is not None and built.spec.inputs:
                from netinspect import forward_pass

                try:
                    forward_pass.check_forward(built)
                except NetinspectError as exc:
                    problems.extend(exc.problems)
        except SpecError as exc:
            bad = True
            problems.extend(exc.problems)
        except UsageError as exc:
            if len(models) == 1:
                raise
            problems.extend(exc.problems)
        if problems or bad:
            failed = True
            report(_sorted(problems), as_json)
        results.append({"file": model, "ok": not (problems or bad), "errors": [p.as_json() for p in problems]})
    if as_json:
        sys.stdout.write(json.dumps({"files": results}) + "\n")
    elif len(models) == 1 and not failed:
        sys.stdout.write("ok\n")
    else:
        for r in results:
            if r["ok"]:
                sys.stdout.write(f"{r['file']}: ok\n")
    if failed:
        raise typer.Exit(int(ExitCode.INVALID))


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.pos.file if p.pos else "", p.pos.line or 0 if p.pos else 0, p.pos.col or 0 if p.pos else 0))
