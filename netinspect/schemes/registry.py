"""The init-scheme registry: every scheme's name, arguments and kind, and lookups with close-name hints.

Torch-free: ``netinspect schemes`` lists the registry without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from netinspect.errors import TextError, did_you_mean

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


class SchemeError(TextError):
    """A scheme that cannot be compiled or applied; the caller attaches the file position.

    ``index`` is the item of a scheme list that is at fault (None for a single string),
    ``offset`` the 0-based character offset inside that item's text where known.
    """

    def __init__(self, message: str, hint: str | None = None, *, index: int | None = None, offset: int | None = None) -> None:
        super().__init__(message, hint, offset=offset)
        self.index = index


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


#: Schemes that change the values a parameter already has instead of drawing new ones.
POST_OPS: Final[frozenset[str]] = frozenset(name for name, info in SCHEMES.items() if info.kind == "post")


def scalar(value: object) -> int | float:
    """A scheme argument that ``compile_scheme`` checked to be a number."""
    assert isinstance(value, (int, float)), value
    return value
