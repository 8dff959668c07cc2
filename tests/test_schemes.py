"""Init schemes: every figure is checked against plain torch computed here, never against our own output."""

from __future__ import annotations

import copy
import inspect
import math
import subprocess
import sys
import typing
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from netinspect.schemes import (
    ALIASES,
    REQUIRED,
    SCHEMES,
    SchemeError,
    SchemeStep,
    apply_steps,
    check_step,
    compile_scheme,
    expected_std,
    lookup,
    tensor_stats,
)

ROOT = Path(__file__).resolve().parents[1]
INIT_NAMES = [name for name, info in SCHEMES.items() if info.kind == "init"]


def _start(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Deterministic starting values, so chains that begin with a post-operation are comparable too."""
    n = math.prod(shape)
    return (torch.arange(n, dtype=torch.float64).reshape(shape) / max(n, 1) - 0.5).to(dtype)


def _label(make: Callable[[], nn.Module]) -> str:
    return make.func.__name__ if isinstance(make, partial) else "module"


def _apply(text: str, param: torch.Tensor, owner: nn.Module | None = None, name: str = "weight") -> None:
    apply_steps(compile_scheme(text), param, owner if owner is not None else nn.Module(), name)


# ---------------------------------------------------------------------------------------------
# registry


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import netinspect.schemes as s\n"
        "[i.signature() for i in s.SCHEMES.values()]\n"
        "s.compile_scheme('[uniform(-10, 10), mask_abs_below(5)]')\n"
        "s.compile_scheme(['kaiming_normal(nonlinearity=\"relu\")', 'scale(2)'])\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_torch_init_function_is_registered() -> None:
    torch_names = {n[:-1] for n in dir(nn.init) if n.endswith("_") and not n.startswith("_") and inspect.isfunction(getattr(nn.init, n))}
    assert torch_names == set(INIT_NAMES)


@pytest.mark.parametrize("name", INIT_NAMES)
def test_static_signature_matches_torch(name: str) -> None:
    sig = inspect.signature(getattr(nn.init, f"{name}_"))
    theirs = [p for p in sig.parameters.values() if p.name not in ("tensor", "generator")]
    ours = SCHEMES[name].params
    assert [p.name for p in ours] == [p.name for p in theirs]
    for mine, real in zip(ours, theirs, strict=True):
        if real.default is inspect.Parameter.empty:
            assert mine.default is REQUIRED
        else:
            assert mine.default == real.default and type(mine.default) is type(real.default)
        if mine.kind == "choice":
            assert mine.choices == typing.get_args(real.annotation)


def test_signature_text_and_aliases() -> None:
    assert SCHEMES["normal"].signature() == "normal(mean=0.0, std=1.0)"
    assert SCHEMES["constant"].signature() == "constant(val)"
    assert SCHEMES["kaiming_uniform"].signature() == "kaiming_uniform(a=0, mode='fan_in', nonlinearity='leaky_relu')"
    assert SCHEMES["zeros"].signature() == "zeros"
    assert ALIASES == {"xavier": "xavier_uniform", "kaiming": "kaiming_uniform"}
    assert lookup("xavier") is SCHEMES["xavier_uniform"]
    assert [SCHEMES[n].kind for n in ("default", "mask_abs_below", "add", "scale")] == [
        "default",
        "post",
        "post",
        "post",
    ]


# ---------------------------------------------------------------------------------------------
# compilation


def test_compile_texts_and_bound_values() -> None:
    (step,) = compile_scheme("normal(std=0.01)")
    assert (step.name, step.text, step.bound()) == ("normal", "normal(std=0.01)", {"mean": 0.0, "std": 0.01})
    (step,) = compile_scheme("xavier")
    assert (step.name, step.text, step.bound()) == ("xavier_uniform", "xavier_uniform", {"gain": 1.0})
    (step,) = compile_scheme("constant(40 + 2)")
    assert (step.text, step.bound()) == ("constant(42)", {"val": 42})
    chain = compile_scheme("[uniform(-10, 10), mask_abs_below(5)]")
    assert [s.text for s in chain] == ["uniform(-10, 10)", "mask_abs_below(5)"]
    assert compile_scheme(["uniform(-10, 10)", " mask_abs_below(5) "]) == chain
    assert SchemeStep("normal", (), (("std", 0.01),)).text == "normal(std=0.01)"


@settings(max_examples=40, deadline=None)
@given(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(0, 1e6, allow_nan=False),
    st.sampled_from(["relu", "tanh", "leaky_relu"]),
)
def test_display_text_compiles_back_to_the_same_steps(low: float, width: float, nonlinearity: str) -> None:
    for text in (f"uniform({low!r}, {low + width!r})", f"[kaiming_normal({low!r}, nonlinearity={nonlinearity!r})]"):
        steps = compile_scheme(text)
        assert compile_scheme([s.text for s in steps]) == steps


@pytest.mark.parametrize(
    ("value", "message", "hint"),
    [
        ("xavier_unifrom", "unknown init scheme 'xavier_unifrom'", "did you mean 'xavier_uniform'"),
        ("xavier_uniform_", "unknown init scheme", "without the trailing underscore"),
        ("nn.init.normal_", "unknown init scheme", "'normal'"),
        ("Normal", "unknown init scheme", "did you mean 'normal'"),
        ("__import__('os')", "unknown init scheme '__import__'", "netinspect schemes"),
        ("normal(std=__import__('os'))", "a call is not allowed", "numbers"),
        ("normal(std=x.y)", "attribute access is not allowed", None),
        ("normal(1, 2, 3)", "takes at most 2 arguments, got 3", "normal(mean=0.0, std=1.0)"),
        ("zeros(1)", "takes no arguments", None),
        ("normal(sd=1)", "unknown argument 'sd'", "did you mean 'std'"),
        ("normal(0, mean=1)", "more than one value for 'mean'", None),
        ("constant", "missing required argument 'val'", "constant(val)"),
        ("sparse(std=0.1)", "missing required argument 'sparsity'", None),
        ("normal(std='a')", "std must be a number", None),
        ("normal(True)", "mean must be a number", None),
        ("dirac(2.0)", "groups must be an integer", None),
        ("dirac(0)", "groups must be >= 1", None),
        ("kaiming_normal(nonlinearity='rlu')", "nonlinearity must be one of", "did you mean 'relu'"),
        ("kaiming_normal(nonlinearity=relu)", "unknown name 'relu'", "nonlinearity='relu'"),
        ("kaiming_uniform(mode='fan_avg')", "mode must be one of 'fan_in', 'fan_out'", None),
        ("uniform(10, -10)", "a must not exceed b", None),
        ("normal(std=-1)", "std must be >= 0", None),
        ("trunc_normal(std=0)", "std must be > 0", None),
        ("sparse(1.5)", "sparsity must be between 0 and 1", None),
        ("xavier_normal(gain=-1)", "gain must be >= 0", None),
        ("uniform(1 / 0)", "division by zero", None),
        ("[default, scale(2)]", "'default' cannot be combined", None),
        ("[]", "empty list of calls", None),
        ("", "empty expression", None),
        ([], "empty scheme list", None),
        ([42], "item 0 is a number", "constant(42)"),
        (0.5, "not a number", "constant(0.5)"),
        (["[normal, ones]"], "chains do not nest", None),
        (["uniform(-10", "10)", "mask_abs_below(5)"], "never closed", "quote call strings that contain commas"),
    ],
)
def test_compile_errors(value: object, message: str, hint: str | None) -> None:
    with pytest.raises(SchemeError) as info:
        compile_scheme(value)  # type: ignore[arg-type]
    assert message in info.value.message
    if hint is not None:
        assert info.value.hint is not None and hint in info.value.hint


def test_compile_error_points_into_the_list_item() -> None:
    with pytest.raises(SchemeError) as info:
        compile_scheme(["normal(std=0.01)", "scale(v='x')"])
    assert info.value.index == 1
    assert info.value.offset == "scale(v='x')".index("'x'")


# ---------------------------------------------------------------------------------------------
# application: bit-identical to plain torch

Init = Callable[[torch.Tensor], object]


def _d2l(w: torch.Tensor) -> None:
    nn.init.uniform_(w, -10, 10)
    w.data *= w.data.abs() >= 5


def _affine(w: torch.Tensor) -> None:
    nn.init.normal_(w)
    with torch.no_grad():
        w += 1
        w *= -2


CASES: list[tuple[str, tuple[int, ...], Init]] = [
    ("uniform", (64, 32), lambda w: nn.init.uniform_(w)),
    ("uniform(-10, 10)", (64, 32), lambda w: nn.init.uniform_(w, -10, 10)),
    ("normal", (64, 32), lambda w: nn.init.normal_(w)),
    ("normal(std=0.01)", (64, 32), lambda w: nn.init.normal_(w, std=0.01)),
    ("normal(1, 2)", (7,), lambda w: nn.init.normal_(w, 1, 2)),
    ("constant(42)", (8, 4), lambda w: nn.init.constant_(w, 42)),
    ("ones", (8,), nn.init.ones_),
    ("zeros", (8, 4), nn.init.zeros_),
    ("eye", (5, 8), nn.init.eye_),
    ("dirac", (8, 4, 3, 3), nn.init.dirac_),
    ("dirac(2)", (8, 4, 3), lambda w: nn.init.dirac_(w, 2)),
    ("dirac", (4, 4, 3, 3, 3), nn.init.dirac_),
    ("xavier_uniform", (64, 32), nn.init.xavier_uniform_),
    ("xavier", (16, 8, 3, 3), nn.init.xavier_uniform_),
    ("xavier_normal(gain=2)", (64, 32), lambda w: nn.init.xavier_normal_(w, gain=2)),
    ("kaiming_uniform", (64, 32), nn.init.kaiming_uniform_),
    ("kaiming", (16, 8, 3, 3), nn.init.kaiming_uniform_),
    ("kaiming_uniform(a=5 ** 0.5)", (64, 32), lambda w: nn.init.kaiming_uniform_(w, a=5**0.5)),
    (
        "kaiming_normal(mode='fan_out', nonlinearity='relu')",
        (64, 32),
        lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
    ),
    ("trunc_normal(std=0.02)", (64, 32), lambda w: nn.init.trunc_normal_(w, std=0.02)),
    ("trunc_normal(a=2, b=3)", (64, 32), lambda w: nn.init.trunc_normal_(w, a=2, b=3)),
    ("orthogonal", (16, 32), nn.init.orthogonal_),
    ("orthogonal(gain=2)", (8, 4, 3, 3), lambda w: nn.init.orthogonal_(w, gain=2)),
    ("sparse(0.5)", (20, 10), lambda w: nn.init.sparse_(w, 0.5)),
    ("sparse(sparsity=0.1, std=1)", (20, 10), lambda w: nn.init.sparse_(w, sparsity=0.1, std=1)),
    ("[uniform(-10, 10), mask_abs_below(5)]", (64, 32), _d2l),
    ("[normal, add(1), scale(-2)]", (64, 32), _affine),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("text", "shape", "reference"), CASES, ids=[c[0] for c in CASES])
def test_apply_is_bit_identical_to_torch(text: str, shape: tuple[int, ...], reference: Init, dtype: torch.dtype) -> None:
    if dtype == torch.bfloat16 and text.startswith("orthogonal"):
        pytest.skip("torch has no bfloat16 QR on the CPU")
    ours = nn.Parameter(_start(shape, dtype))
    theirs = nn.Parameter(_start(shape, dtype))
    torch.manual_seed(7)
    apply_steps(compile_scheme(text), ours, nn.Module(), "weight")
    after_ours = torch.rand(4)
    torch.manual_seed(7)
    reference(theirs)
    after_theirs = torch.rand(4)
    assert torch.equal(ours, theirs)
    assert torch.equal(after_ours, after_theirs), "the global RNG advanced differently"
    assert ours.requires_grad and ours.grad_fn is None


@pytest.mark.parametrize("v", [3, 0.25, -1.5])
def test_post_operations_on_existing_values(v: float) -> None:
    ours, theirs = _start((6, 5)), _start((6, 5))
    _apply(f"add({v})", ours)
    theirs += v
    assert torch.equal(ours, theirs)
    _apply(f"scale({v})", ours)
    theirs *= v
    assert torch.equal(ours, theirs)
    _apply(f"mask_abs_below({abs(v)})", ours)
    theirs *= theirs.abs() >= abs(v)
    assert torch.equal(ours, theirs)


MODULES: list[tuple[Callable[[], nn.Module], str]] = [
    (partial(nn.Linear, 5, 7), "weight"),
    (partial(nn.Linear, 5, 7), "bias"),
    (partial(nn.Conv2d, 3, 4, 3), "weight"),
    (partial(nn.Conv2d, 3, 4, 3), "bias"),
    (partial(nn.Embedding, 10, 4, padding_idx=0), "weight"),
    (partial(nn.BatchNorm1d, 4), "weight"),
    (partial(nn.LSTM, 3, 4), "weight_hh_l0"),
    (partial(nn.MultiheadAttention, 8, 2), "in_proj_weight"),
]


@pytest.mark.parametrize(("make", "name"), MODULES, ids=[f"{_label(m)}.{n}" for m, n in MODULES])
def test_default_equals_reset_parameters_for_that_parameter_only(make: Callable[[], nn.Module], name: str) -> None:
    torch.manual_seed(0)
    module = make()
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            if t.is_floating_point():
                t.fill_(0.5)
    reference = copy.deepcopy(module)
    before = {k: v.clone() for k, v in module.state_dict().items()}

    torch.manual_seed(11)
    apply_steps(compile_scheme("default"), module.get_parameter(name), module, name)
    torch.manual_seed(11)
    method = "reset_parameters" if hasattr(reference, "reset_parameters") else "_reset_parameters"
    reset: Callable[[], object] = getattr(reference, method)
    reset()

    after = module.state_dict()
    assert torch.equal(after[name], reference.state_dict()[name])
    assert not torch.equal(after[name], before[name])
    for key, value in after.items():
        if key != name:
            assert torch.equal(value, before[key]), f"{key} changed"


class _Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3, 3))


def test_default_without_reset_method_is_refused() -> None:
    module = _Plain()
    with pytest.raises(SchemeError, match="_Plain") as info:
        _apply("default", module.weight, module)
    assert info.value.hint is not None
    assert torch.equal(module.weight, torch.zeros(3, 3))


@pytest.mark.parametrize(
    ("text", "shape", "hint"),
    [
        ("xavier_uniform", (8,), "types: [Linear]"),
        ("kaiming_normal", (8,), "types: [Linear]"),
        ("orthogonal", (8,), "types: [Linear]"),
        ("eye", (2, 3, 4), "dirac"),
        ("sparse(0.5)", (2, 3, 4), "types: [Linear]"),
        ("dirac", (4, 4), "eye"),
        ("dirac(3)", (4, 4, 3), "groups"),
        ("[uniform(-1, 1), xavier_uniform]", (8,), "types: [Linear]"),
    ],
)
def test_shape_refusals_happen_before_values_change(text: str, shape: tuple[int, ...], hint: str) -> None:
    param = nn.Parameter(_start(shape))
    rng = torch.get_rng_state()
    with pytest.raises(SchemeError) as info:
        _apply(text, param, name="bias")
    shape_text = "[" + ", ".join(map(str, shape)) + "]"
    assert f"'bias' has shape {shape_text}" in info.value.message
    assert info.value.hint is not None and hint in info.value.hint
    assert torch.equal(param, _start(shape))
    assert torch.equal(torch.get_rng_state(), rng)


def test_torch_refusals_become_scheme_errors() -> None:
    with pytest.raises(SchemeError, match=r"xavier_uniform failed on 'weight' of shape \[0, 0\]") as info:
        _apply("xavier_uniform", torch.empty(0, 0))
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.hint is not None and "float32" in info.value.hint


# ---------------------------------------------------------------------------------------------
# theory


def _gain_std(gain: float, fan: int) -> float:
    return gain / math.sqrt(fan)


THEORY: list[tuple[str, tuple[int, ...]]] = [
    ("uniform(-3, 5)", (1000, 1000)),
    ("normal(1, 0.5)", (1000, 1000)),
    ("xavier_uniform", (1000, 1000)),
    ("xavier_normal(gain=2)", (500, 2000)),
    ("kaiming_uniform", (1000, 1000)),
    ("kaiming_uniform(a=0.2)", (64, 32, 5, 5)),
    ("kaiming_normal(mode='fan_out', nonlinearity='relu')", (500, 2000)),
    ("kaiming_normal(nonlinearity='tanh')", (2000, 500)),
    ("trunc_normal", (300, 300)),
    ("trunc_normal(mean=0.5, std=2, a=-1, b=3)", (300, 300)),
    ("trunc_normal(a=2, b=3)", (300, 300)),
    ("orthogonal(3)", (400, 400)),
    ("orthogonal", (200, 40, 5)),
    ("sparse(0.3, 0.1)", (1000, 300)),
    ("[uniform(-10, 10), mask_abs_below(5)]", (1000, 1000)),
    ("[normal(std=2), mask_abs_below(1), scale(-3), mask_abs_below(4)]", (1000, 1000)),
    ("[kaiming_normal, mask_abs_below(0.01)]", (1000, 1000)),
    ("[xavier_uniform, add(1), scale(2)]", (1000, 1000)),
    ("[normal, scale(0)]", (100, 100)),
]


@pytest.mark.parametrize(("text", "shape"), THEORY, ids=[t[0] for t in THEORY])
def test_expected_std_matches_empirical_std(text: str, shape: tuple[int, ...]) -> None:
    w = torch.empty(shape)
    torch.manual_seed(1)
    steps = compile_scheme(text)
    apply_steps(steps, w, nn.Module(), "weight")
    expected = expected_std(steps, w)
    assert expected is not None
    assert expected == pytest.approx(w.std().item(), rel=0.02, abs=1e-12)


def test_expected_std_closed_forms() -> None:
    w = torch.empty(300, 200)
    assert expected_std(compile_scheme("uniform(-3, 5)"), w) == pytest.approx(8 / math.sqrt(12))
    assert expected_std(compile_scheme("xavier_normal(gain=2)"), w) == pytest.approx(2 * math.sqrt(2 / 500))
    relu = nn.init.calculate_gain("relu")
    assert expected_std(compile_scheme("kaiming_normal(nonlinearity='relu')"), w) == pytest.approx(_gain_std(relu, 200))
    leaky = nn.init.calculate_gain("leaky_relu", 0.2)
    text = "kaiming_uniform(a=0.2, mode='fan_out')"
    assert expected_std(compile_scheme(text), w) == pytest.approx(_gain_std(leaky, 300))
    for text in ("constant(42)", "ones", "zeros", "[constant(3), mask_abs_below(5)]", "[ones, add(2)]"):
        assert expected_std(compile_scheme(text), w) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "eye",
        "scale(2)",
        "[uniform(0, 1), mask_abs_below(0.5)]",
        "[trunc_normal, mask_abs_below(1)]",
        "[normal(1, 1), mask_abs_below(1)]",
        "[normal, add(1), mask_abs_below(1)]",
        "xavier_uniform",  # on a 1-D tensor
    ],
)
def test_expected_std_is_none_without_theory(text: str) -> None:
    shape = (10,) if text == "xavier_uniform" else (10, 10)
    assert expected_std(compile_scheme(text), torch.empty(shape)) is None


class _OwnReset(nn.Linear):
    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)


DEFAULTS: list[tuple[Callable[[], nn.Module], str, float]] = [
    (partial(nn.Linear, 1000, 1000), "weight", 0.02),
    (partial(nn.Linear, 1000, 1000), "bias", 0.06),
    (partial(nn.Conv2d, 64, 128, 5), "weight", 0.02),
    (partial(nn.ConvTranspose2d, 64, 128, 5), "weight", 0.02),
    (partial(nn.Bilinear, 200, 100, 20), "weight", 0.02),
    (partial(nn.Embedding, 1000, 1000, padding_idx=0), "weight", 0.02),
    (partial(nn.LayerNorm, 100), "weight", 0.0),
    (partial(nn.LayerNorm, 100), "bias", 0.0),
    (partial(nn.BatchNorm2d, 100), "weight", 0.0),
    (partial(nn.RMSNorm, 100), "weight", 0.0),
    (partial(nn.LSTM, 500, 500), "weight_hh_l0", 0.02),
    (partial(nn.GRUCell, 500, 500), "bias_ih", 0.06),
    (partial(nn.MultiheadAttention, 512, 8), "in_proj_weight", 0.02),
    (partial(nn.MultiheadAttention, 512, 8), "in_proj_bias", 0.0),
]


@pytest.mark.parametrize(("make", "name", "rel"), DEFAULTS, ids=[f"{_label(m)}.{n}" for m, n, _ in DEFAULTS])
def test_expected_std_of_default(make: Callable[[], nn.Module], name: str, rel: float) -> None:
    torch.manual_seed(2)
    module = make()
    param = module.get_parameter(name)
    steps = compile_scheme("default")
    apply_steps(steps, param, module, name)
    expected = expected_std(steps, param, module, name)
    assert expected is not None
    assert expected == pytest.approx(param.std().item(), rel=rel, abs=1e-12)


def test_expected_std_of_default_is_none_for_unknown_resets() -> None:
    module = _OwnReset(4, 4)
    assert expected_std(compile_scheme("default"), module.weight, module, "weight") is None
    assert expected_std(compile_scheme("default"), module.weight) is None


# ---------------------------------------------------------------------------------------------
# statistics


def test_tensor_stats_float32_matches_torch() -> None:
    torch.manual_seed(3)
    x = torch.randn(300, 200)
    x[0, :50] = 0.0
    x[1, :10] = -0.0
    s = tensor_stats(x)
    std, mean = torch.std_mean(x)
    assert s.mean == mean.item() and s.std == std.item()
    assert s.mean == pytest.approx(x.mean().item(), abs=1e-6)
    assert (s.min, s.max) == (x.min().item(), x.max().item())
    assert s.zero_fraction == (x == 0).sum().item() / x.numel() == 60 / 60000


def test_tensor_stats_dtypes() -> None:
    torch.manual_seed(4)
    half = torch.randn(100, 10).to(torch.bfloat16)
    std, mean = torch.std_mean(half.float())
    s = tensor_stats(half)
    assert (s.mean, s.std, s.min, s.max) == (mean.item(), std.item(), half.min().item(), half.max().item())
    x64 = torch.randn(1000, dtype=torch.float64)
    std64, mean64 = torch.std_mean(x64)
    s64 = tensor_stats(x64)
    assert (s64.mean, s64.std) == (mean64.item(), std64.item())
    ints = tensor_stats(torch.tensor([0, 2, 4]))
    assert (ints.mean, ints.std, ints.min, ints.max, ints.zero_fraction) == (2.0, 2.0, 0.0, 4.0, 1 / 3)


def test_tensor_stats_small_tensors() -> None:
    one = tensor_stats(nn.Parameter(torch.tensor([1.5])))
    assert (one.mean, one.std, one.min, one.max, one.zero_fraction) == (1.5, None, 1.5, 1.5, 0.0)
    empty = tensor_stats(torch.empty(0, 4))
    assert empty.std is None
    assert all(math.isnan(v) for v in (empty.mean, empty.min, empty.max, empty.zero_fraction))


def test_check_step_needs_only_the_shape() -> None:
    meta = nn.Linear(4, 8, device="meta")
    (step,) = compile_scheme("xavier_uniform")
    check_step(step, meta.weight, meta, "weight")
    with pytest.raises(SchemeError, match=r"'bias' has shape \[8\]"):
        check_step(step, meta.bias, meta, "bias")
