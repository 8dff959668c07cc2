"""The typer app and what every command shares: option aliases, error reporting and exit codes,
building through the session with a progress bar, and the console entry point ``main``."""

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

from netinspect import __version__, session
from netinspect.errors import ExitCode, NetinspectError, Problem
from netinspect.session import BuildOptions

if TYPE_CHECKING:
    from netinspect.build import Built
    from netinspect.spec import ModelSpec

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
    typer.Option(
        "--weights",
        help="Load weights into the model: .safetensors, *.safetensors.index.json, a checkpoint folder, or .pt/.pth/.bin (weights_only).",
        show_default=False,
    ),
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


def options(device: str, dtype: str | None, seed: int | None, allow: list[str] | None, **more: Any) -> BuildOptions:
    return BuildOptions(device=device, dtype=dtype, seed=seed, allow=tuple(allow or ()), **more)


def make(model: str | None, options: BuildOptions, as_json: bool, spec: ModelSpec | None = None) -> Built:
    """Build through the session, with the progress bar; report ``--partial`` warnings in the chosen format."""
    with Progress() as progress:
        made = session.make(model, options, spec=spec, report=functools.partial(report, as_json=as_json), progress=progress)
    report(made.warnings, as_json, level="warning")
    return made.built


def load_spec(model: str | None, allow: list[str] | None, as_json: bool) -> ModelSpec:
    return session.load_spec(model, allow or (), functools.partial(report, as_json=as_json))


class Progress:
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
