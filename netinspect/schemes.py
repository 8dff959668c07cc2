"""Init schemes: the registry, scheme text compiled to steps, their application and their theory.

Importing this module never imports torch (``netinspect schemes`` lists the registry
instantly); the functions that touch tensors import it when they run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from .errors import did_you_mean
from .expr import CallExpr, Expr, ExprError, parse_call_list

if TYPE_CHECKING:
    import torch

SchemeKind = Literal["init", "post", "default"]
ParamKind = Literal["number", "int", "choice"]


class _Required:
    """The default of a parameter that has none."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()

NONLINEARITIES: Final = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
FAN_MODES: Final = ("fan_in", "fan_out")


class SchemeError(Exception):
    """A scheme that cannot be compiled or applied; the caller attaches the file position.

    ``index`` is the item of a scheme list that is at fault (None for a single string),
    ``offset`` the 0-based character offset inside that item's text where known.
    """

    def __init__(self, message: str, hint: str | None = None, *, index: int | None = None, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.index = index
        self.offset = offset


@dataclass(frozen=True, slots=True)
class SchemeParam:
    """One argument of a scheme: its name, its default (``REQUIRED`` if none) and the values it takes."""

    name: str
    default: object = REQUIRED
    kind: ParamKind = "number"
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True, slots=True)
class SchemeInfo:
    """A registered scheme: ``init`` (a ``torch.nn.init`` function), ``post`` (an operation on values) or ``default``."""

    name: str
    params: tuple[SchemeParam, ...]
    doc: str
    kind: SchemeKind

    def signature(self) -> str:
        """How the scheme is written, e.g. ``normal(mean=0.0, std=1.0)`` or ``constant(val)``."""
        if not self.params:
            return self.name
        parts = [p.name if p.required else f"{p.name}={p.default!r}" for p in self.params]
        return f"{self.name}({', '.join(parts)})"


def _num(name: str, default: object = REQUIRED) -> SchemeParam:
    return SchemeParam(name, default, "number")


_TABLE: tuple[SchemeInfo, ...] = (
    SchemeInfo("uniform", (_num("a", 0.0), _num("b", 1.0)), "values drawn from U(a, b)", "init"),
    SchemeInfo("normal", (_num("mean", 0.0), _num("std", 1.0)), "values drawn from N(mean, std^2)", "init"),
    SchemeInfo("constant", (_num("val"),), "every value set to val", "init"),
    SchemeInfo("ones", (), "every value set to 1", "init"),
    SchemeInfo("zeros", (), "every value set to 0", "init"),
    SchemeInfo("eye", (), "the identity matrix (2-D weights)", "init"),
    SchemeInfo(
        "dirac",
        (SchemeParam("groups", 1, "int"),),
        "the Dirac delta, preserving the input channels (3-, 4- and 5-D conv weights)",
        "init",
    ),
    SchemeInfo("xavier_uniform", (_num("gain", 1.0),), "Glorot: U(-x, x), x = gain*sqrt(6/(fan_in+fan_out))", "init"),
    SchemeInfo("xavier_normal", (_num("gain", 1.0),), "Glorot: N(0, std^2), std = gain*sqrt(2/(fan_in+fan_out))", "init"),
    SchemeInfo(
        "kaiming_uniform",
        (
            _num("a", 0),
            SchemeParam("mode", "fan_in", "choice", FAN_MODES),
            SchemeParam("nonlinearity", "leaky_relu", "choice", NONLINEARITIES),
        ),
        "He: U(-x, x), x = gain*sqrt(3/fan); a is the leaky_relu negative slope",
        "init",
    ),
    SchemeInfo(
        "kaiming_normal",
        (
            _num("a", 0),
            SchemeParam("mode", "fan_in", "choice", FAN_MODES),
            SchemeParam("nonlinearity", "leaky_relu", "choice", NONLINEARITIES),
        ),
        "He: N(0, std^2), std = gain/sqrt(fan); a is the leaky_relu negative slope",
        "init",
    ),
    SchemeInfo(
        "trunc_normal",
        (_num("mean", 0.0), _num("std", 1.0), _num("a", -2.0), _num("b", 2.0)),
        "N(mean, std^2) redrawn outside [a, b] (absolute bounds)",
        "init",
    ),
    SchemeInfo("orthogonal", (_num("gain", 1),), "a (semi-)orthogonal matrix times gain (trailing dims flattened)", "init"),
    SchemeInfo(
        "sparse",
        (_num("sparsity"), _num("std", 0.01)),
        "N(0, std^2) with a fraction sparsity of each column zeroed (2-D weights)",
        "init",
    ),
    SchemeInfo(
        "default",
        (),
        "the owning module's own reset_parameters() (its PyTorch default), for this parameter only",
        "default",
    ),
    SchemeInfo("mask_abs_below", (_num("t"),), "zero every value with |w| < t", "post"),
    SchemeInfo("add", (_num("v"),), "add v to every value", "post"),
    SchemeInfo("scale", (_num("v"),), "multiply every value by v", "post"),
)

SCHEMES: Final[dict[str, SchemeInfo]] = {info.name: info for info in _TABLE}
ALIASES: Final[dict[str, str]] = {"xavier": "xavier_uniform", "kaiming": "kaiming_uniform"}


def lookup(name: str) -> SchemeInfo:
    """The scheme called ``name`` (an alias resolves to its scheme); SchemeError with a hint otherwise."""
    canonical = ALIASES.get(name, name)
    info = SCHEMES.get(canonical)
    if info is not None:
        return info
    known = [*SCHEMES, *ALIASES]
    hint: str | None
    if name.endswith("_") and name.rstrip("_") in known:
        hint = f"write '{name.rstrip('_')}' without the trailing underscore"
    elif "." in name and name.rsplit(".", 1)[-1].rstrip("_") in known:
        hint = f"write the bare name '{name.rsplit('.', 1)[-1].rstrip('_')}'"
    else:
        hint = did_you_mean(name, known)
    if hint is None:
        hint = "`netinspect schemes` lists them: " + ", ".join(SCHEMES)
    raise SchemeError(f"unknown init scheme '{name}'", hint)


@dataclass(frozen=True, slots=True)
class SchemeStep:
    """One compiled call of a scheme chain, arguments evaluated and checked."""

    name: str
    args: tuple[object, ...] = ()
    kwargs: tuple[tuple[str, object], ...] = ()
    text: str = ""

    def __post_init__(self) -> None:
        if not self.text:
            object.__setattr__(self, "text", _display(self.name, self.args, self.kwargs))

    @property
    def info(self) -> SchemeInfo:
        return SCHEMES[self.name]

    def bound(self) -> dict[str, object]:
        """Every parameter name -> its value, defaults filled in."""
        params = SCHEMES[self.name].params
        values: dict[str, object] = {p.name: p.default for p in params}
        for param, value in zip(params, self.args, strict=False):
            values[param.name] = value
        values.update(self.kwargs)
        return values


def _display(name: str, args: tuple[object, ...], kwargs: tuple[tuple[str, object], ...]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs]
    return f"{name}({', '.join(parts)})" if parts else name


# ---------------------------------------------------------------------------------------------
# compilation (no torch)

_ARGS_HINT = "scheme arguments are numbers, arithmetic on numbers, or quoted strings"
_SYNTAX_HINT = "write e.g. xavier_uniform, normal(std=0.01) or [uniform(-10, 10), mask_abs_below(5)]; " + _ARGS_HINT
_SPLIT_HINT = (
    "YAML splits an unquoted flow list at every comma; quote call strings that contain commas, "
    'e.g. ["uniform(-10, 10)", mask_abs_below(5)], or use a block list'
)


def compile_scheme(value: str | Sequence[str]) -> tuple[SchemeStep, ...]:
    """Compile a scheme: one call string, a ``[call, ...]`` chain string, or a list of call strings."""
    if isinstance(value, str):
        steps = tuple(_compile_call(call, value, None) for call in _parse(value, None))
    elif isinstance(value, (list, tuple)):
        if not value:
            raise SchemeError("empty scheme list", "a chain needs at least one scheme, e.g. [normal(std=0.01)]")
        collected: list[SchemeStep] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise SchemeError(
                    f"scheme list item {index} is {_type_name(item)}, not a call string",
                    _literal_hint(item),
                    index=index,
                )
            calls = _parse(item, index)
            if len(calls) != 1 or item.lstrip().startswith(("[", "(")):
                raise SchemeError(
                    f"scheme list item {index} is itself a list; chains do not nest",
                    "write each call as its own list item",
                    index=index,
                )
            collected.append(_compile_call(calls[0], item, index))
        steps = tuple(collected)
    else:
        raise SchemeError(f"a scheme is a call string or a list of them, not {_type_name(value)}", _literal_hint(value))
    _check_chain(steps)
    return steps


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", dict: "a mapping"}.get(type(value), type(value).__name__)


def _literal_hint(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"to fill with a number write constant({value})"
    return 'e.g. xavier_uniform, normal(std=0.01) or ["uniform(-10, 10)", mask_abs_below(5)]'


def _lead(text: str) -> int:
    return len(text) - len(text.lstrip())


def _parse(text: str, index: int | None) -> tuple[CallExpr, ...]:
    try:
        return parse_call_list(text)
    except ExprError as exc:
        hint = _SPLIT_HINT if index is not None and text.count("(") != text.count(")") else _SYNTAX_HINT
        raise SchemeError(f"invalid scheme {text.strip()!r}: {exc.message}", hint, index=index, offset=exc.offset + _lead(text)) from None


def _compile_call(call: CallExpr, text: str, index: int | None) -> SchemeStep:
    lead = _lead(text)
    try:
        info = lookup(call.name)
    except SchemeError as exc:
        exc.index, exc.offset = index, call.name_offset + lead
        raise
    params = info.params
    names = [p.name for p in params]

    def fail(message: str, hint: str | None, expr: Expr | None = None) -> SchemeError:
        offset = call.name_offset if expr is None else expr.node.col_offset
        return SchemeError(f"{info.name}: {message}", hint, index=index, offset=offset + lead)

    sig_hint = f"signature: {info.signature()}"
    if len(call.args) > len(params):
        expected = f"at most {len(params)} argument{'s' if len(params) != 1 else ''}" if params else "no arguments"
        raise fail(f"takes {expected}, got {len(call.args)}", sig_hint)
    given: dict[str, tuple[object, Expr]] = {}
    pairs = [(names[i], expr) for i, expr in enumerate(call.args)] + list(call.kwargs)
    for key, expr in pairs:
        if key not in names:
            raise fail(f"unknown argument '{key}'", did_you_mean(key, names) or sig_hint, expr)
        if key in given:
            raise fail(f"got more than one value for '{key}'", sig_hint, expr)
        given[key] = (_evaluate(expr, key, fail), expr)
    for param in params:
        if param.required and param.name not in given:
            raise fail(f"missing required argument '{param.name}'", sig_hint)
        if param.name in given:
            value, expr = given[param.name]
            problem = _type_problem(param, value)
            if problem is not None:
                raise fail(problem[0], problem[1] or sig_hint, expr)
    bound = {p.name: (given[p.name][0] if p.name in given else p.default) for p in params}
    problem = _value_problem(info.name, bound)
    if problem is not None:
        raise fail(problem[0], problem[1])
    args = tuple(given[names[i]][0] for i in range(len(call.args)))
    kwargs = tuple((key, given[key][0]) for key, _ in call.kwargs)
    return SchemeStep(info.name, args, kwargs)


def _evaluate(expr: Expr, key: str, fail: Callable[[str, str | None, Expr | None], SchemeError]) -> object:
    names = sorted(expr.names())
    if names:
        bare = names[0]
        hint = f"quote it: {key}='{bare}'" if bare in NONLINEARITIES or bare in FAN_MODES else _ARGS_HINT
        raise fail(f"unknown name '{bare}' in argument '{key}'", hint, expr)
    try:
        return expr.evaluate({})
    except ExprError as exc:
        raise fail(f"argument '{key}': {exc.message}", _ARGS_HINT, expr) from None


def _type_problem(param: SchemeParam, value: object) -> tuple[str, str | None] | None:
    if param.kind == "choice":
        if isinstance(value, str) and value in param.choices:
            return None
        choices = ", ".join(repr(c) for c in param.choices)
        close = did_you_mean(value, param.choices) if isinstance(value, str) else None
        return f"{param.name} must be one of {choices}, got {value!r}", close or f"e.g. {param.name}={param.default!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        want = "an integer" if param.kind == "int" else "a number"
        return f"{param.name} must be {want}, got {_type_name(value)} {value!r}", None
    if param.kind == "int" and not isinstance(value, int):
        return f"{param.name} must be an integer, got {value!r}", None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{param.name} must be finite, got {value!r}", None
    return None


def _value_problem(name: str, b: dict[str, object]) -> tuple[str, str | None] | None:
    """Values torch would refuse (or silently mishandle), found before anything runs."""

    def f(key: str) -> float:
        return float(_scalar(b[key]))

    if name == "uniform" and f("a") > f("b"):
        return f"a must not exceed b, got a={b['a']!r}, b={b['b']!r}", "write uniform(low, high)"
    if name in ("normal", "sparse") and f("std") < 0:
        return f"std must be >= 0, got {b['std']!r}", None
    if name == "trunc_normal":
        if f("std") <= 0:
            return f"std must be > 0, got {b['std']!r}", None
        if f("a") > f("b"):
            return (
                f"a must not exceed b, got a={b['a']!r}, b={b['b']!r}",
                "a and b are absolute bounds, not multiples of std",
            )
    if name in ("xavier_uniform", "xavier_normal") and f("gain") < 0:
        return f"gain must be >= 0, got {b['gain']!r}", None
    if name == "sparse" and not 0 <= f("sparsity") <= 1:
        return (
            f"sparsity must be between 0 and 1, got {b['sparsity']!r}",
            "it is the fraction of each column set to zero",
        )
    if name == "dirac" and f("groups") < 1:
        return f"groups must be >= 1, got {b['groups']!r}", None
    return None


def _check_chain(steps: tuple[SchemeStep, ...]) -> None:
    if len(steps) > 1 and any(s.name == "default" for s in steps):
        raise SchemeError(
            "'default' cannot be combined with other schemes in a chain",
            "write default alone, or chain explicit schemes, e.g. [kaiming_uniform(a=5 ** 0.5), scale(0.5)]",
        )


# ---------------------------------------------------------------------------------------------
# application (torch)

_MIN_DIMS: Final[dict[str, int]] = {
    "xavier_uniform": 2,
    "xavier_normal": 2,
    "kaiming_uniform": 2,
    "kaiming_normal": 2,
    "orthogonal": 2,
}
_EXACT_DIMS: Final[dict[str, tuple[int, ...]]] = {"eye": (2,), "sparse": (2,), "dirac": (3, 4, 5)}
_NARROW_HINT = "restrict the rule with types: [Linear] or a narrower target"


def _shape_text(param: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in param.shape) + "]"


def check_step(step: SchemeStep, param: torch.Tensor, owner: torch.nn.Module, param_name: str) -> None:
    """Refuse (SchemeError) what torch would refuse for this tensor, using only its shape: safe on meta."""
    dims = param.dim()
    where = f"'{param_name}' has shape {_shape_text(param)}"
    if step.name in _MIN_DIMS and dims < _MIN_DIMS[step.name]:
        hint = _NARROW_HINT
        if dims == 1:
            hint += "; 1-D parameters such as biases take zeros, constant(v) or normal(std=0.01)"
        why = " (it uses fan_in/fan_out)" if step.name.startswith(("xavier", "kaiming")) else ""
        raise SchemeError(f"{step.name} needs a tensor with at least 2 dimensions{why}; {where}", hint)
    if step.name in _EXACT_DIMS and dims not in _EXACT_DIMS[step.name]:
        allowed = _EXACT_DIMS[step.name]
        want = f"{allowed[0]}-D" if len(allowed) == 1 else f"{allowed[0]}- to {allowed[-1]}-D"
        hint = _NARROW_HINT
        if step.name == "eye" and dims in (3, 4, 5):
            hint = "eye fills 2-D weights (Linear); for convolution weights use dirac, or " + _NARROW_HINT
        elif step.name == "dirac" and dims == 2:
            hint = "dirac fills 3- to 5-D convolution weights; for 2-D weights use eye, or " + _NARROW_HINT
        raise SchemeError(f"{step.name} needs a {want} tensor; {where}", hint)
    if step.name == "dirac":
        groups = step.bound()["groups"]
        assert isinstance(groups, int)
        if param.shape[0] % groups:
            raise SchemeError(
                f"dirac(groups={groups}): dim 0 of '{param_name}' ({param.shape[0]}) is not divisible by groups; {where}",
                "groups is the conv layer's groups; it must divide the output channels",
            )
    if step.name == "default":
        _reset_method(owner, param_name)


_check_shape = check_step  # the earlier private name, still imported by build.py


def _reset_method(owner: torch.nn.Module, param_name: str) -> Callable[[], object]:
    for attr in ("reset_parameters", "_reset_parameters"):
        method = getattr(owner, attr, None)
        if callable(method):
            return method  # type: ignore[no-any-return]
    raise SchemeError(
        f"'default' re-runs the module's own reset_parameters(), but {type(owner).__name__} (owner of '{param_name}') has none",
        "choose an explicit scheme such as normal(std=0.01) or zeros",
    )


def apply_steps(steps: Sequence[SchemeStep], param: torch.Tensor, owner: torch.nn.Module, param_name: str) -> None:
    """Apply a compiled chain to ``param`` in place, drawing from the global RNG, exactly as plain torch does.

    ``default`` calls ``owner``'s reset method and then restores every other tensor of
    ``owner``, so that only ``param`` changes (its values are those a full reset would give it).
    """
    import torch

    for step in steps:
        check_step(step, param, owner, param_name)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
        for step in steps:
            try:
                _apply_one(step, param, owner, param_name)
            except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as exc:
                dtype = str(param.dtype).removeprefix("torch.")
                raise SchemeError(
                    f"{step.text} failed on '{param_name}' of shape {_shape_text(param)}: {exc}",
                    f"torch refused it for this {dtype} parameter on {param.device}; " + _NARROW_HINT,
                ) from exc


def _scalar(value: object) -> int | float:
    assert isinstance(value, (int, float)), value  # compile_scheme checked the types
    return value


def _apply_one(step: SchemeStep, param: torch.Tensor, owner: torch.nn.Module, param_name: str) -> None:
    import torch

    kwargs = step.bound()
    if step.name == "mask_abs_below":
        param.mul_(param.abs() >= _scalar(kwargs["t"]))  # D2L: w.data *= w.data.abs() >= t
    elif step.name == "add":
        param.add_(_scalar(kwargs["v"]))
    elif step.name == "scale":
        param.mul_(_scalar(kwargs["v"]))
    elif step.name == "default":
        reset = _reset_method(owner, param_name)
        others = [t for t in (*owner.parameters(), *owner.buffers()) if t is not param]
        saved = [t.detach().clone() for t in others]
        reset()
        for tensor, value in zip(others, saved, strict=True):
            tensor.copy_(value)
    else:
        init: Callable[..., torch.Tensor] = getattr(torch.nn.init, f"{step.name}_")
        init(param, **kwargs)


# ---------------------------------------------------------------------------------------------
# theory and statistics


@dataclass(frozen=True, slots=True)
class _Dist:
    """What is known of the values after a step: a family, its scale, and the |w| < cut entries zeroed."""

    family: Literal["uniform", "normal", "const", "other"]
    scale: float  # uniform: half-width; normal: sigma; other: the std itself
    cut: float = 0.0

    def std(self) -> float:
        if self.family == "const":
            return 0.0
        if self.family == "other" or self.cut <= 0:
            return self.scale / math.sqrt(3.0) if self.family == "uniform" else self.scale
        if self.family == "uniform":
            c, t = self.scale, self.cut
            return 0.0 if t >= c else math.sqrt((c**3 - t**3) / (3.0 * c))
        if self.scale == 0:
            return 0.0
        u = self.cut / self.scale  # E[x^2; |x| >= t] for N(0, s^2) = 2 s^2 (u phi(u) + 1 - Phi(u))
        tail = 2.0 * (u * _phi(u) + 1.0 - _cdf(u))
        return self.scale * math.sqrt(max(tail, 0.0))


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _trunc_normal_std(mean: float, std: float, a: float, b: float) -> float | None:
    if a == b:
        return 0.0
    alpha, beta = (a - mean) / std, (b - mean) / std
    z = _cdf(beta) - _cdf(alpha)
    if z <= 1e-12:
        return None
    pa, pb = _phi(alpha), _phi(beta)
    var = std**2 * (1.0 + (alpha * pa - beta * pb) / z - ((pa - pb) / z) ** 2)
    return math.sqrt(max(var, 0.0))


def expected_std(
    steps: Sequence[SchemeStep], param: torch.Tensor, owner: torch.nn.Module | None = None, param_name: str = ""
) -> float | None:
    """The theoretical std of ``param`` after the chain, or None where theory gives none."""
    if param.numel() == 0:
        return None
    start = max((i for i, s in enumerate(steps) if s.info.kind != "post"), default=None)
    if start is None:
        return None
    try:
        first = steps[start]
        if first.name == "default":
            return None if owner is None else _default_std(owner, param_name, param)
        dist = _init_dist(first, param)
        for step in steps[start + 1 :]:
            if dist is None:
                return None
            dist = _post_dist(step, dist)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None if dist is None else dist.std()


def _init_dist(step: SchemeStep, param: torch.Tensor) -> _Dist | None:
    from torch.nn import init

    b = step.bound()
    num = {k: float(v) for k, v in b.items() if isinstance(v, (int, float))}
    name = step.name
    if name == "uniform":
        lo, hi = num["a"], num["b"]
        if lo == hi:
            return _Dist("const", 0.0)
        return _Dist("uniform", hi) if lo == -hi else _Dist("other", (hi - lo) / math.sqrt(12.0))
    if name == "normal":
        return _Dist("normal" if num["mean"] == 0 else "other", num["std"])
    if name in ("constant", "ones", "zeros"):
        return _Dist("const", 0.0)
    if name in ("xavier_uniform", "xavier_normal"):
        fan_in, fan_out = init._calculate_fan_in_and_fan_out(param)
        std = num["gain"] * math.sqrt(2.0 / float(fan_in + fan_out))
        return _Dist("uniform", math.sqrt(3.0) * std) if name == "xavier_uniform" else _Dist("normal", std)
    if name in ("kaiming_uniform", "kaiming_normal"):
        fan = init._calculate_correct_fan(param, str(b["mode"]))  # type: ignore[arg-type]
        gain = init.calculate_gain(str(b["nonlinearity"]), b["a"])  # type: ignore[arg-type]
        std = gain / math.sqrt(fan)
        return _Dist("uniform", math.sqrt(3.0) * std) if name == "kaiming_uniform" else _Dist("normal", std)
    if name == "trunc_normal":
        tstd = _trunc_normal_std(num["mean"], num["std"], num["a"], num["b"])
        return None if tstd is None else _Dist("other", tstd)
    if name == "orthogonal":
        if param.dim() < 2:
            return None
        rows = param.shape[0]
        cols = param.numel() // rows
        return _Dist("other", abs(num["gain"]) / math.sqrt(max(rows, cols)))
    if name == "sparse":
        if param.dim() != 2:
            return None
        rows = param.shape[0]
        zeros = min(math.ceil(num["sparsity"] * rows), rows)
        return _Dist("other", num["std"] * math.sqrt((rows - zeros) / rows))
    return None  # eye, dirac: fixed patterns, no distribution


def _post_dist(step: SchemeStep, dist: _Dist) -> _Dist | None:
    v = float(_scalar(step.bound()[step.info.params[0].name]))
    if dist.family == "const":
        return dist
    if step.name == "scale":
        if v == 0:
            return _Dist("const", 0.0)
        return _Dist(dist.family, dist.scale * abs(v), dist.cut * abs(v))
    if step.name == "add":
        return _Dist("other", dist.std())
    if step.name == "mask_abs_below":
        if dist.family == "other":
            return None
        return _Dist(dist.family, dist.scale, max(dist.cut, v))
    return None


def _default_std(owner: torch.nn.Module, name: str, param: torch.Tensor) -> float | None:
    """The std of ``owner``'s own reset for ``name``, for the torch.nn resets whose code is known."""
    from torch import nn
    from torch.nn import init
    from torch.nn.modules import batchnorm, conv, rnn

    reset = getattr(type(owner), "reset_parameters", None)
    if reset in (nn.Linear.reset_parameters, conv._ConvNd.reset_parameters):
        # kaiming_uniform(a=sqrt(5)) on the weight and U(+-1/sqrt(fan_in)) on the bias: both 1/sqrt(3 fan_in)
        if name not in ("weight", "bias"):
            return None
        fan_in, _ = init._calculate_fan_in_and_fan_out(owner.get_parameter("weight"))
        return 1.0 / math.sqrt(3.0 * fan_in) if fan_in > 0 else 0.0
    if reset is nn.Bilinear.reset_parameters:
        if name not in ("weight", "bias"):
            return None
        return 1.0 / math.sqrt(3.0 * owner.get_parameter("weight").size(1))
    if reset in (nn.Embedding.reset_parameters, nn.EmbeddingBag.reset_parameters):
        if name != "weight":
            return None
        rows = param.shape[0]
        padded = getattr(owner, "padding_idx", None) is not None
        return math.sqrt((rows - 1) / rows) if padded else 1.0
    norms = (
        batchnorm._NormBase.reset_parameters,
        nn.LayerNorm.reset_parameters,
        nn.GroupNorm.reset_parameters,
        nn.RMSNorm.reset_parameters,
        nn.PReLU.reset_parameters,
    )
    if reset in norms:
        return 0.0 if name in ("weight", "bias") else None
    if reset in (rnn.RNNBase.reset_parameters, rnn.RNNCellBase.reset_parameters):
        hidden = int(getattr(owner, "hidden_size", 0))
        return 1.0 / math.sqrt(3.0 * hidden) if hidden > 0 else 0.0
    if reset is None and getattr(type(owner), "_reset_parameters", None) is nn.MultiheadAttention._reset_parameters:
        if name == "in_proj_bias":
            return 0.0
        if name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "bias_k", "bias_v"):
            fan_in, fan_out = init._calculate_fan_in_and_fan_out(param)
            return math.sqrt(2.0 / float(fan_in + fan_out))
    return None


@dataclass(frozen=True, slots=True)
class TensorStats:
    """Summary statistics of a tensor's values; NaN where a figure does not exist (empty tensor)."""

    mean: float
    std: float | None
    min: float
    max: float
    zero_fraction: float


def tensor_stats(t: torch.Tensor) -> TensorStats:
    """Mean, std (correction=1; None below two elements), min, max and zero fraction, computed by torch.

    Half-precision values are summarised in float32, other floats in their own dtype,
    anything else in float64; the figures come back in one transfer.
    """
    import torch

    with torch.no_grad():
        x = t.detach()
        if x.is_floating_point():
            if x.element_size() < 4:
                x = x.to(torch.float32)
        else:
            x = x.to(torch.float64)
        n = x.numel()
        nan = float("nan")
        if n == 0:
            return TensorStats(nan, None, nan, nan, nan)
        if n == 1:
            mean = x.reshape(()).clone()
            std = torch.full((), nan, dtype=x.dtype, device=x.device)
        else:
            std, mean = torch.std_mean(x)
        lo, hi = torch.aminmax(x)
        nonzero = torch.count_nonzero(x)
        figures = torch.stack([v.to(torch.float64) for v in (mean, std, lo, hi, nonzero)]).tolist()
    mean_f, std_f, lo_f, hi_f, nonzero_f = (float(v) for v in figures)
    return TensorStats(
        mean=mean_f,
        std=None if n == 1 else std_f,
        min=lo_f,
        max=hi_f,
        zero_fraction=(n - nonzero_f) / n,
    )
