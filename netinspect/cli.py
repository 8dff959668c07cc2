"""The command line: parses flags, calls the rest, turns errors into messages and exit codes.

The only module that imports typer. torch is imported lazily, inside the commands that
build a model, so ``--help``, ``schemes``, ``configs`` and file errors never pay for it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from . import __version__, session
from .errors import ExitCode, NetinspectError, Problem, SpecError, UsageError, did_you_mean
from .session import BuildOptions

if TYPE_CHECKING:
    from .build import Built
    from .spec import ModelSpec

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="netinspect",
    help="Inspect PyTorch networks described in YAML: module tree, parameters, state_dict, init schemes, ties.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ModelArg = Annotated[
    Optional[str],
    typer.Argument(help="A model file, or a built-in config name (see `netinspect configs`). Default: mlp.", show_default=False),
]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="cpu, cuda, cuda:N, mps or meta (meta allocates nothing).")]
DtypeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--dtype",
        help="Parameter dtype (float32, float16, bfloat16, float64); default: the file's dtype:, else float32.",
        show_default=False,
    ),
]
SeedOpt = Annotated[
    Optional[int],
    typer.Option("--seed", help="Seed for the default init and random schemes; default: the file's seed:, else 0.", show_default=False),
]
AllowOpt = Annotated[
    Optional[list[str]],
    typer.Option("--allow", help="Grant a module class outside torch.nn: pkg.mod:Class (repeatable).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
WeightsOpt = Annotated[
    Optional[Path],
    typer.Option("--weights", help="Load a .safetensors or .pt/.pth state_dict (weights_only) into the model.", show_default=False),
]
PartialOpt = Annotated[bool, typer.Option("--partial", help="With --weights: load the keys that match and report the rest.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for internal errors.")]
ModuleOpt = Annotated[
    Optional[str],
    typer.Option("--module", "-m", help="Only this submodule (names relative to it), e.g. 0 or 0.block1.", show_default=False),
]


# --- errors and exit codes ----------------------------------------------------------------------


def report(problems: list[Problem], as_json: bool, level: str = "error") -> None:
    """One line per problem on stderr: ``FILE:LINE:COL: error: ...``, or with --json ``{"error": {...}}``."""
    for p in problems:
        line = json.dumps({level: p.as_json()}) if as_json else p.format(level)
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def handled(func: F) -> F:
    """Map known errors to one line each and their exit code; Ctrl-C to 130; bugs to exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            with warnings.catch_warnings():
                if not kwargs.get("debug"):
                    # torch's warnings from constructors would break the one-line-per-problem output
                    warnings.simplefilter("ignore")
                return func(*args, **kwargs)
        except NetinspectError as exc:
            report(exc.problems, as_json)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            report([Problem("interrupted", None, None)], as_json)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except typer.Exit:
            raise
        except RecursionError:
            if kwargs.get("debug"):
                raise
            report([Problem("the model is nested too deeply for this operation", None, "see the limits in the README")], as_json)
            raise typer.Exit(int(ExitCode.INVALID)) from None
        except Exception as exc:
            if kwargs.get("debug"):
                raise
            report([Problem(f"internal error: {type(exc).__name__}: {exc}", None, "rerun with --debug for the traceback")], as_json)
            raise typer.Exit(int(ExitCode.RUNTIME)) from None

    return wrapper  # type: ignore[return-value]


# --- model loading ------------------------------------------------------------------------------


def _options(device: str, dtype: str | None, seed: int | None, allow: list[str] | None, **more: Any) -> BuildOptions:
    return BuildOptions(device=device, dtype=dtype, seed=seed, allow=tuple(allow or ()), **more)


def _make(model: str | None, options: BuildOptions, as_json: bool, spec: ModelSpec | None = None) -> Built:
    """Build through the session, with the progress bar; report ``--partial`` warnings in the chosen format."""
    with _progress() as progress:
        made = session.make(model, options, spec=spec, report=functools.partial(report, as_json=as_json), progress=progress)
    report(made.warnings, as_json, level="warning")
    return made.built


def _spec(model: str | None, allow: list[str] | None, as_json: bool) -> ModelSpec:
    return session.load_spec(model, allow or (), functools.partial(report, as_json=as_json))


class _progress:
    """A rich progress bar on stderr for steps that take over about a second (terminal only)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.task: Any = None
        self.stage = ""
        self.start = 0.0

    def __enter__(self) -> Callable[[str, int, int], None] | None:
        if not sys.stderr.isatty():
            return None
        import time

        self.start = time.monotonic()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        import time

        if self.bar is None:
            if time.monotonic() - self.start < 1.0 or done >= total:
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
        if stage != self.stage:
            self.stage = stage
            self.task = self.bar.add_task(stage, total=total)
        self.bar.update(self.task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- commands -----------------------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        typer.echo(f"netinspect {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """netinspect: a command-line network inspector for PyTorch."""


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
    built = _make(model, _options(device, dtype, seed, allow, weights=weights, partial=partial, need="structure"), as_json)
    if repr_:
        sys.stdout.write(str(built.module) + "\n")
        return
    from . import queries, render

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
    built = _make(model, _options(device, dtype, seed, allow, weights=weights, partial=partial, need="storage"), as_json)
    from . import queries, render

    target = queries.submodule(built.module, module) if module else built.module
    rows, totals = queries.params(target)
    if as_json:
        session.check_shared_with({id(r.paths): r.paths for r in rows}.values(), "Parameter", "rows")
        render.emit_json(render.params_json(built, rows, totals))
    else:
        render.emit(render.params_lines(built, rows, totals, module))


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
    if device.strip().lower() == "meta" and (key is not None or show_values):
        raise UsageError.at(None, "--key/--values need values, and the meta device has none", "use --device cpu (or cuda)")
    need = "values" if key is not None or show_values else "storage"
    built = _make(model, _options(device, dtype, seed, allow, weights=weights, partial=partial, need=need), as_json)
    from . import queries, render

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
        Optional[Path], typer.Option("--save", help="Write the state_dict to FILE (.safetensors or .pt), atomically.", show_default=False)
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
    """Apply the file's init rules, then --scheme/--bias, --rules and --set; print per-parameter statistics."""
    if device.strip().lower() == "meta":
        raise UsageError.at(None, "init needs values, and the meta device has none", "use --device cpu (or cuda)")
    if save is not None and save.suffix not in (".pt", ".pth", ".safetensors"):
        raise UsageError.at(None, f"--save {str(save)!r}: unknown format", "use a .safetensors or .pt file name")
    extra = session.cli_rules(scheme, target, param, bias, types or [])
    spec = _spec(model, allow, as_json)
    if rules is not None:
        extra += session.rules_file(rules)
    from .weights import apply_edits, parse_edit, save_state

    edits = [parse_edit(s) for s in set_ or []]
    built = _make(model, _options(device, dtype, seed, allow, weights=weights, partial=partial, extra_rules=extra), as_json, spec)
    from . import queries, render

    apply_edits(built, edits)
    report_rows = queries.init_report(built)
    if save is not None:
        save_state(built, save)
    if as_json:
        render.emit_json(render.init_json(built, report_rows))
    else:
        render.emit(render.init_lines(built, report_rows, save))


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
    built = _make(model, _options(device, dtype, seed, allow, weights=weights, partial=partial, need="structure"), as_json)
    from . import queries, render

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
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run the model on a seeded torch.rand input; print the output and each module's output shape."""
    spec = _spec(model, allow, as_json)
    inputs = session.parse_inputs(input_, spec)
    built = _make(model, _options(device, dtype, seed, allow, weights=weights, partial=partial), as_json, spec)
    from . import queries, render

    result = queries.forward(built, inputs)
    if as_json:
        render.emit_json(render.forward_json(built, result))
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
            built = _make(model, _options("meta", None, None, allow), as_json)
            if built.spec.inputs:
                from . import queries

                try:
                    queries.check_forward(built)
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


@app.command()
@handled
def schemes(as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """The init schemes with their arguments (aliases: xavier, kaiming)."""
    from .schemes import ALIASES, SCHEMES

    if as_json:
        doc = {
            "schemes": [{"name": i.name, "signature": i.signature(), "kind": i.kind, "doc": i.doc} for i in SCHEMES.values()],
            "aliases": ALIASES,
        }
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    width = max(len(i.signature()) for i in SCHEMES.values())
    lines = [f"{i.signature().ljust(width)}  {i.doc}" for i in SCHEMES.values()]
    lines.append("")
    lines.append("aliases: " + ", ".join(f"{a} = {b}" for a, b in ALIASES.items()))
    sys.stdout.write("\n".join(lines) + "\n")


@app.command()
@handled
def configs(as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """The built-in model configs, usable by name (netinspect tree rgnet)."""
    from .spec import config_doc

    items = [(name, config_doc(path)) for name, path in session.config_names().items()]
    if as_json:
        sys.stdout.write(json.dumps({"configs": [{"name": n, "doc": d} for n, d in items]}) + "\n")
        return
    width = max((len(n) for n, _ in items), default=0)
    sys.stdout.write("".join(f"{n.ljust(width)}  {d}\n" for n, d in items))


class _JsonUsage:
    """With --json, turn the option parser's plain-text usage errors (exit 2) into JSON error lines."""

    def __enter__(self) -> None:
        import io

        self.saved = sys.stderr
        self.buffer = io.StringIO()
        sys.stderr = self.buffer

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        sys.stderr = self.saved
        text = self.buffer.getvalue()
        code = getattr(exc, "code", None)
        if code == 2 and text and not text.lstrip().startswith("{"):
            lines = [x.strip(" │╭╰─") for x in text.splitlines()]
            message = next((x.split("Error:", 1)[1].strip() for x in lines if "Error:" in x), "") or " ".join(x for x in lines if x)
            sys.stderr.write(json.dumps({"error": Problem(message, None, "see --help").as_json()}) + "\n")
        else:
            sys.stderr.write(text)


def main() -> None:
    """Console-script entry: run the app, then leave without the interpreter's teardown."""
    import gc

    gc.disable()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    code: int = 0
    captured = _JsonUsage() if "--json" in sys.argv[1:] else None
    try:
        if captured is not None:
            with captured:
                app()
        else:
            app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        sys.stderr.write("netinspect: error: interrupted\n")
        code = int(ExitCode.INTERRUPTED)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    os._exit(code)
