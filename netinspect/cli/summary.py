"""``summary``: what a model costs — FLOPs, saved activations and training memory per module."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from netinspect import session
from netinspect.errors import UsageError, did_you_mean

from .app import (
    AllowOpt,
    DebugOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelArg,
    PartialOpt,
    SeedOpt,
    WeightsOpt,
    app,
    handled,
    load_spec,
    make,
    options,
)

OPTIMIZERS = ("adam", "adamw", "sgd", "sgd-momentum", "none")  # = analysis.OPTIMIZERS (torch-free here)
PRECISIONS = {"fp32": None, "bf16-mixed": "bfloat16", "fp16-mixed": "float16"}  # --precision → autocast dtype


def _choice(flag: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    key = value.strip().lower()
    if key not in choices:
        raise UsageError.at(None, f"unknown {flag} {value!r}", did_you_mean(key, list(choices)) or "one of " + ", ".join(choices))
    return key


@app.command()
@handled
def summary(
    model: ModelArg = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Show N levels below the root.", min=0, show_default=False)] = None,
    expand: Annotated[bool, typer.Option("--expand", help="Show every module (no folding of identical siblings).")] = False,
    input_: Annotated[
        Optional[list[str]],
        typer.Option(
            "--input", "-i", help="Input shape, e.g. 2,4 (repeatable for several inputs); default: the file's input:.", show_default=False
        ),
    ] = None,
    optimizer: Annotated[str, typer.Option("--optimizer", help="adam, adamw, sgd, sgd-momentum or none.")] = "adam",
    precision: Annotated[
        Optional[str],
        typer.Option(
            "--precision",
            help="fp32, bf16-mixed or fp16-mixed (fp32 weights, autocast); default: the model's dtype, no master copy.",
            show_default=False,
        ),
    ] = None,
    shard: Annotated[
        Optional[int], typer.Option("--shard", help="Per rank as FSDP2/ZeRO-3 split over N ranks.", min=1, show_default=False)
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
    """What a training step costs: per module output shape, parameters, FLOPs and output bytes; totals, and memory."""
    optimizer = _choice("--optimizer", optimizer, OPTIMIZERS)
    if precision is not None:
        precision = _choice("--precision", precision, list(PRECISIONS))
        if dtype is not None and session.parse_dtype(dtype) != "float32":
            raise UsageError.at(
                None, f"--precision {precision} trains fp32 weights, and --dtype asks for {dtype}", "leave out --dtype (or --precision)"
            )
        dtype = "float32"
    spec = load_spec(model, allow, as_json)
    specs = session.parse_inputs(input_, spec)
    meta = device.strip().lower() == "meta"
    built = make(
        model, options(device, dtype, seed, allow, weights=weights, partial=partial, need="structure" if meta else "storage"), as_json, spec
    )
    import torch

    from netinspect import analysis, forward_pass, queries, render
    from netinspect.layers import dtype_name
    from netinspect.render import costs as render_costs

    autocast_to = PRECISIONS[precision] if precision is not None else None
    low = getattr(torch, autocast_to) if autocast_to else None
    built.module.train()
    try:
        with analysis.without_heavy_imports():
            inputs = forward_pass.make_inputs(built, specs)
            costs = analysis.analyse(built.module, inputs, autocast=low)
    except analysis.ForwardFailed as exc:
        raise forward_pass.analysis_failure(built, exc) from exc.cause
    estimate = analysis.estimate(
        built.module,
        activations=costs.saved_bytes,
        outputs=costs.output_bytes,
        optimizer=optimizer,
        foreach=built.device.type != "cpu",
        shard=shard,
    )
    root = analysis.summary_tree(built.module, costs)
    input_shapes = [queries.shape_of(t) for t in inputs]
    if as_json:
        render.emit_json(render_costs.summary_json(built.spec.name, str(built.device), input_shapes, root, costs, estimate, precision))
    else:
        render.emit(
            render_costs.summary_lines(
                built.spec.name,
                str(built.device),
                input_shapes,
                root,
                costs,
                estimate,
                precision,
                depth,
                expand,
                dtype_name(built.dtype),
            )
        )
