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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from . import __version__
from .errors import ExitCode, NetinspectError, Pos, Problem, Problems, SpecError, UsageError, did_you_mean

if TYPE_CHECKING:
    from .build import Built
    from .spec import ModelSpec, PartialSpecError, Rule

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

CONFIG_DIRS = (Path(__file__).parent / "configs", Path(__file__).parent.parent / "configs")


# --- errors and exit codes ----------------------------------------------------------------------


def report(problems: list[Problem], as_json: bool) -> None:
    for p in problems:
        line = json.dumps({"error": p.as_json()}) if as_json else p.format()
        sys.stderr.write(line + "\n")


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


def config_names() -> dict[str, Path]:
    for d in CONFIG_DIRS:
        if d.is_dir():
            return {p.stem: p for p in sorted(d.glob("*.yaml"))}
    return {}


def model_path(model: str | None) -> str:
    """A path for MODEL: an existing file, or a built-in config name."""
    name = model or "mlp"
    if model is not None and (os.path.exists(name) or os.sep in name or name.endswith((".yaml", ".yml"))):
        return name
    configs = config_names()
    if name in configs:
        return str(configs[name])
    raise UsageError.at(
        None,
        f"no model file or built-in config named {name!r}",
        did_you_mean(name, configs) or "`netinspect configs` lists the built-in ones",
    )


def load_spec(model: str | None, allow: list[str] | None = None, as_json: bool = False) -> ModelSpec:
    """Parse a model file without torch. On errors, report them at once; then, if some module calls
    did parse, import torch to report their unknown classes and bad arguments too (all in one run)."""
    from .spec import PartialSpecError, parse_model, read_model_text

    path = model_path(model)
    text, shown = read_model_text(path)
    try:
        return parse_model(text, shown)
    except PartialSpecError as exc:
        if not exc.leaves:
            raise
        report(exc.problems, as_json)
        sys.stderr.flush()
        report(_class_problems(exc, allow), as_json)
        raise SpecError([]) from None  # every problem is reported


#: ``--json`` of params/tree repeats, on each path of a shared object, its other paths (SPEC's
#: ``shared_with``): quadratic in the number of paths. Past this many entries it is refused.
SHARED_WITH_LIMIT = 10_000_000


def check_shared_with(path_lists: Iterable[list[str]], what: str, rows: str) -> None:
    """Refuse (exit 2) a document whose ``shared_with`` lists would hold more than SHARED_WITH_LIMIT paths.
    ``path_lists``: every path of each shared object, each list once."""
    total, worst = 0, 0
    for paths in path_lists:
        total += len(paths) * (len(paths) - 1)
        worst = max(worst, len(paths))
    if total > SHARED_WITH_LIMIT:
        raise UsageError.at(
            None,
            f"--json would repeat {total:,} paths under shared_with: one {what} is reached by {worst:,} paths, "
            f"and each of its {rows} lists the other {worst - 1:,}",
            "'netinspect shared --json' lists each group of paths once; the text output abbreviates",
        )


def make(
    model: str | None,
    device: str,
    dtype: str | None,
    seed: int | None,
    allow: list[str] | None,
    weights: Path | None = None,
    partial: bool = False,
    extra_rules: tuple[Rule, ...] = (),
    spec: ModelSpec | None = None,
    as_json: bool = False,
    need: str = "values",
) -> Built:
    """Parse (torch-free), then import torch and build; the one path every model command takes."""
    spec = spec or load_spec(model, allow, as_json)
    dt = _dtype(dtype)
    from .build import build
    from .devices import parse_device
    from .layers import parse_allow

    dev = parse_device(device)
    allowed = parse_allow(allow or [])
    with _progress() as progress:
        if weights is not None and need == "structure":
            need = "storage"
        built = build(spec, device=dev, dtype=dt, seed=seed, allowed=allowed, extra_rules=extra_rules, progress=progress, need=need)
        if weights is not None:
            from .weights import load_weights

            load_weights(built, str(weights), partial=partial, progress=progress)
    return built


def _dtype(dtype: str | None) -> str | None:
    if dtype is None:
        return None
    from .spec import DTYPES

    key = dtype.removeprefix("torch.")
    if key not in DTYPES:
        raise UsageError.at(
            None, f"unknown --dtype {dtype!r}", did_you_mean(key, DTYPES) or "one of " + ", ".join(sorted(set(DTYPES.values())))
        )
    return DTYPES[key]


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
    built = make(model, device, dtype, seed, allow, weights, partial, as_json=as_json, need="structure")
    if repr_:
        sys.stdout.write(str(built.module) + "\n")
        return
    from . import queries, render

    node = queries.tree(built)
    if as_json:
        check_shared_with({id(n.paths): n.paths for n in queries.walk_tree(node)}.values(), "module", "nodes")
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
    built = make(model, device, dtype, seed, allow, weights, partial, as_json=as_json, need="storage")
    from . import queries, render

    target = queries.submodule(built.module, module) if module else built.module
    rows, totals = queries.params(target)
    if as_json:
        check_shared_with({id(r.paths): r.paths for r in rows}.values(), "Parameter", "rows")
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
    built = make(
        model, device, dtype, seed, allow, weights, partial, as_json=as_json, need="values" if key is not None or show_values else "storage"
    )
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
    extra = _cli_rules(scheme, target, param, bias, types or [])
    spec = load_spec(model, allow, as_json)
    if rules is not None:
        from .spec import parse_rules_file, read_model_text

        text, shown = read_model_text(str(rules))
        extra += parse_rules_file(text, shown)
    edits = [_parse_set(s) for s in set_ or []]
    built = make(model, device, dtype, seed, allow, weights, partial, extra, spec=spec)
    from . import queries, render
    from .weights import apply_edits, save_state

    apply_edits(built, edits)
    report_rows = queries.init_report(built)
    if save is not None:
        save_state(built, save)
    if as_json:
        render.emit_json(render.init_json(built, report_rows))
    else:
        render.emit(render.init_lines(built, report_rows, save))


def _cli_rules(scheme: str | None, target: str, param: str, bias: str | None, types: list[str]) -> tuple[Rule, ...]:
    from .schemes import SchemeError, compile_scheme
    from .spec import Rule

    params = []
    for flag, name, text in (("--scheme", param, scheme), ("--bias", "bias", bias)):
        if text is None:
            continue
        try:
            params.append((name, compile_scheme(text)))
        except SchemeError as exc:
            raise UsageError.at(None, f"{flag} {text!r}: {exc.message}", exc.hint) from None
    if not params:
        return ()
    return (Rule(target, tuple(types), tuple(params), Pos("--scheme")),)


def _parse_set(text: str) -> Any:
    from .weights import parse_edit

    return parse_edit(text)


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
    built = make(model, device, dtype, seed, allow, weights, partial, as_json=as_json, need="structure")
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
    spec = load_spec(model, allow, as_json)
    inputs = _inputs(input_, spec)
    built = make(model, device, dtype, seed, allow, weights, partial, spec=spec)
    from . import queries, render

    result = queries.forward(built, inputs)
    if as_json:
        render.emit_json(render.forward_json(built, result))
    else:
        render.emit(render.forward_lines(built, result))


def _inputs(flags: list[str] | None, spec: ModelSpec) -> list[Any]:
    from .spec import InputSpec

    if not flags:
        if not spec.inputs:
            raise UsageError.at(None, f"{spec.name} declares no input:", "give a shape: --input 2,4")
        return list(spec.inputs)
    out = []
    for f in flags:
        try:
            shape = tuple(int(x) for x in f.replace("x", ",").split(",") if x.strip())
        except ValueError:
            raise UsageError.at(None, f"--input {f!r} is not a shape", "e.g. --input 2,4") from None
        if not shape or any(d < 0 for d in shape):
            raise UsageError.at(None, f"--input {f!r} is not a shape", "e.g. --input 2,4")
        out.append(InputSpec(shape, None, None, Pos("--input")))
    return out


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
            built = make(model, "meta", None, None, allow, as_json=as_json)
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


def _class_problems(exc: PartialSpecError, allow: list[str] | None) -> list[Problem]:
    """After spec errors, the unknown classes and bad arguments of the calls that did parse."""
    from .layers import check_args, parse_allow, resolve

    allowed = parse_allow(allow or [])
    problems = Problems()  # one line per problem, up to its cap, counting those already reported
    problems.extend(exc.problems)
    for leaf in exc.leaves:
        found = resolve(leaf.type_name, allowed, leaf.pos, exc.block_names)
        problem = found if isinstance(found, Problem) else check_args(found, leaf.args, dict(leaf.kwargs), leaf.pos)
        if problem is not None:
            problems.extend([problem])
    return problems.items[len(exc.problems) :]


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

    items = [(name, config_doc(path)) for name, path in config_names().items()]
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
