"""The forward language's allow-list: the functions, tensor methods, attributes and constants a
graph module's ``forward:`` may use (SPEC §1.1). Torch-free: ``netinspect ops`` lists it instantly,
and the spec layer checks every forward against it before anything is built.

A function outside it is granted like a class, on the command line: ``--allow pkg.mod:func``.
"""

from __future__ import annotations

from typing import Final

#: ``torch.NAME(...)``
TORCH_FUNCTIONS: Final = (
    "abs",
    "add",
    "amax",
    "amin",
    "arange",
    "argmax",
    "baddbmm",
    "bmm",
    "cat",
    "chunk",
    "clamp",
    "cos",
    "cumsum",
    "div",
    "einsum",
    "exp",
    "flatten",
    "full",
    "log",
    "logsumexp",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mul",
    "neg",
    "ones",
    "ones_like",
    "outer",
    "permute",
    "polar",
    "pow",
    "relu",
    "reshape",
    "rsqrt",
    "sigmoid",
    "sin",
    "softmax",
    "split",
    "sqrt",
    "square",
    "stack",
    "sub",
    "sum",
    "tanh",
    "transpose",
    "tril",
    "triu",
    "unsqueeze",
    "view_as_complex",
    "view_as_real",
    "where",
    "zeros",
    "zeros_like",
)

#: ``F.NAME(...)`` (``torch.nn.functional``)
F_FUNCTIONS: Final = (
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "dropout",
    "elu",
    "embedding",
    "gelu",
    "glu",
    "group_norm",
    "interpolate",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "mish",
    "normalize",
    "pad",
    "relu",
    "relu6",
    "rms_norm",
    "scaled_dot_product_attention",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
)

#: ``x.NAME(...)`` on a tensor
METHODS: Final = (
    "abs",
    "add",
    "amax",
    "bool",
    "chunk",
    "clamp",
    "contiguous",
    "cos",
    "cumsum",
    "div",
    "exp",
    "expand",
    "expand_as",
    "flatten",
    "float",
    "half",
    "int",
    "long",
    "masked_fill",
    "matmul",
    "max",
    "mean",
    "min",
    "mul",
    "neg",
    "permute",
    "pow",
    "relu",
    "repeat",
    "repeat_interleave",
    "reshape",
    "reshape_as",
    "rsqrt",
    "sigmoid",
    "sin",
    "size",
    "softmax",
    "split",
    "sqrt",
    "squeeze",
    "sub",
    "sum",
    "t",
    "tanh",
    "to",
    "transpose",
    "type_as",
    "unbind",
    "unflatten",
    "unsqueeze",
    "view",
    "view_as",
)

#: ``x.NAME`` on a tensor (and ``x.shape[0]`` on what it gives)
ATTRIBUTES: Final = ("device", "dtype", "ndim", "shape", "T")

#: ``torch.NAME`` constants: dtypes, for ``x.to(torch.float32)`` and ``dtype=`` arguments
DTYPE_CONSTANTS: Final = (
    "bfloat16",
    "bool",
    "float",
    "float16",
    "float32",
    "float64",
    "half",
    "int",
    "int16",
    "int32",
    "int64",
    "int8",
    "long",
    "uint8",
)

#: Python operators and what the compiled graph calls for them
BINARY_OPERATORS: Final = {"+": "add", "-": "sub", "*": "mul", "/": "truediv", "//": "floordiv", "%": "mod", "**": "pow", "@": "matmul"}
UNARY_OPERATORS: Final = {"-": "neg", "+": "pos"}
COMPARISONS: Final = ("==", "!=", "<", "<=", ">", ">=")


def listing() -> dict[str, list[str]]:
    """Everything a forward may use, by kind (``netinspect ops --json``)."""
    return {
        "functions": [f"torch.{n}" for n in TORCH_FUNCTIONS] + [f"F.{n}" for n in F_FUNCTIONS],
        "methods": list(METHODS),
        "attributes": list(ATTRIBUTES),
        "constants": [f"torch.{n}" for n in DTYPE_CONSTANTS],
        "operators": [*BINARY_OPERATORS, "unary -", *COMPARISONS[:0]],
    }
