"""From a MODEL argument to a built model, without the command line: find the file or built-in
config, parse it (torch-free), then build it with the options a command was given. A MODEL that is a
weights file or checkpoint (``.safetensors``, ``*.safetensors.index.json``, a directory, ``.pt``/
``.pth``/``.bin``) is read as a tensor table instead (``netinspect.sources``).

Typer-free: the CLI, the tests and the benchmarks all come through here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Pos, Problem, Problems, SpecError, UsageError, did_you_mean

if TYPE_CHECKING:
    from .build import Built
    from .spec import InputSpec, ModelSpec, PartialSpecError, Rule
    from .tables import TensorTable

#: Where the built-in configs are: beside the package when installed, the repository's configs/ otherwise.
CONFIG_DIRS = (Path(__file__).parent / "configs", Path(__file__).parent.parent / "configs")

#: ``--json`` of params/tree repeats, on each path of a shared object, its other paths (SPEC's
#: ``shared_with``): quadratic in the number of paths. Past this many entries it is refused.
SHARED_WITH_LIMIT = 10_000_000

Report = Callable[[list[Problem]], None]
Progress = Callable[[str, int, int], None]


def config_names() -> dict[str, Path]:
    """Built-in config name → its file."""
    for d in CONFIG_DIRS:
        if d.is_dir():
            return {p.stem: p for p in sorted(d.glob("*.yaml"))}
    return {}


def model_path(model: str | None) -> str:
    """A path for MODEL: an existing file, or a built-in config name (default ``mlp``)."""
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


def is_checkpoint(model: str | None) -> bool:
    """Whether MODEL is a weights file or checkpoint (by its name, or being a directory)."""
    from .sources import is_checkpoint as named_like_one

    return model is not None and named_like_one(model)


def open_checkpoint(model: str) -> TensorTable:
    """A checkpoint MODEL's tensor table (headers and metadata only; torch-free for safetensors)."""
    from .sources import open_checkpoint as read

    return read(model)


def tensor_table(model: str | None, options: BuildOptions, report: Report | None = None, progress: Progress | None = None) -> TensorTable:
    """MODEL as a tensor table: a checkpoint's, or the state_dict of the model built with ``options``."""
    if model is not None and is_checkpoint(model):
        return open_checkpoint(model)
    built = make(model, options, report=report, progress=progress).built
    from .queries import model_table

    return model_table(built)


def load_spec(model: str | None, allow: Iterable[str] = (), report: Report | None = None) -> ModelSpec:
    """Parse a model file without torch. When it has problems and some module calls did parse, the
    problems are passed to ``report`` at once; then torch is imported to find the unknown classes and
    bad arguments of those calls too, and the SpecError raised holds the rest (all in one run). A file
    whose written forward has a problem is reported without torch: its classes are checked once the
    forward compiles."""
    from .spec import PartialSpecError, grants, parse_model, read_model_text

    if is_checkpoint(model):
        raise UsageError.at(
            None,
            f"{model} is a checkpoint, not a model file: this command builds a model",
            f"give the model file and load the checkpoint into it: --weights {model}",
        )
    path = model_path(model)
    text, shown = read_model_text(path)
    try:
        return parse_model(text, shown, grants(allow))
    except PartialSpecError as exc:
        if not exc.leaves or report is None or exc.in_forward:
            raise
        report(exc.problems)
        raise SpecError(class_problems(exc, allow)) from None


def class_problems(exc: PartialSpecError, allow: Iterable[str]) -> list[Problem]:
    """After spec errors, the unknown classes and bad arguments of the calls that did parse."""
    from .layers import check_args, parse_allow, resolve

    allowed = parse_allow(list(allow))
    problems = Problems()  # one line per problem, up to its cap, counting those already reported
    problems.extend(exc.problems)
    for leaf in exc.leaves:
        found = resolve(leaf.type_name, allowed, leaf.pos, exc.block_names)
        problem = found if isinstance(found, Problem) else check_args(found, leaf.args, dict(leaf.kwargs), leaf.pos)
        if problem is not None:
            problems.extend([problem])
    return problems.items[len(exc.problems) :]


@dataclass(frozen=True)
class BuildOptions:
    """What a command asks of a build (its flags)."""

    device: str = "cpu"
    dtype: str | None = None
    seed: int | None = None
    allow: tuple[str, ...] = ()
    weights: Path | None = None
    partial: bool = False
    extra_rules: tuple[Rule, ...] = ()
    #: "values" (default init and rules), "storage" (allocated, never read) or "structure" (meta tensors kept)
    need: str = "values"


@dataclass
class Session:
    """A built model, and the warnings its loading produced (``--weights --partial``)."""

    built: Built
    warnings: list[Problem] = field(default_factory=list)


def make(
    model: str | None,
    options: BuildOptions = BuildOptions(),
    *,
    spec: ModelSpec | None = None,
    report: Report | None = None,
    progress: Progress | None = None,
) -> Session:
    """Parse (torch-free), then import torch and build: the one path every model command takes."""
    spec = spec or load_spec(model, options.allow, report)
    dtype = parse_dtype(options.dtype)
    from .build import build
    from .devices import parse_device
    from .layers import parse_allow

    device = parse_device(options.device)
    allowed = parse_allow(list(options.allow), spec.granted_functions())
    need = "storage" if options.weights is not None and options.need == "structure" else options.need
    built = build(
        spec, device=device, dtype=dtype, seed=options.seed, allowed=allowed, extra_rules=options.extra_rules, progress=progress, need=need
    )
    warnings: list[Problem] = []
    if options.weights is not None:
        from .weights import load_weights

        warnings = load_weights(built, str(options.weights), partial=options.partial, progress=progress)
    return Session(built, warnings)


def parse_dtype(dtype: str | None) -> str | None:
    """``--dtype`` → a dtype name (usage error with close names otherwise)."""
    if dtype is None:
        return None
    from .spec import DTYPES

    key = dtype.removeprefix("torch.")
    if key not in DTYPES:
        raise UsageError.at(
            None, f"unknown --dtype {dtype!r}", did_you_mean(key, DTYPES) or "one of " + ", ".join(sorted(set(DTYPES.values())))
        )
    return DTYPES[key]


def parse_inputs(flags: list[str] | None, spec: ModelSpec) -> list[InputSpec]:
    """``--input 2,4`` (repeatable), or the file's ``input:``. Shapes given for each of the file's
    inputs keep what else the file says of them (an int64 token input stays int64, with its ``high``)."""
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
    if len(out) == len(spec.inputs):
        out = [InputSpec(g.shape, d.dtype, d.high, g.pos) for g, d in zip(out, spec.inputs, strict=True)]
    return out


def cli_rules(scheme: str | None, target: str, param: str, bias: str | None, types: Iterable[str]) -> tuple[Rule, ...]:
    """``--scheme S --target GLOB --param NAME --bias S --types CLS`` as one rule (none without a scheme)."""
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


def rules_file(path: Path) -> tuple[Rule, ...]:
    """``--rules FILE``: a YAML list of RULEs."""
    from .spec import parse_rules_file, read_model_text

    text, shown = read_model_text(str(path))
    return parse_rules_file(text, shown)


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
