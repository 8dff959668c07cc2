"""Init schemes: the registry, scheme text compiled to steps, their application and their theory.

Importing this package never imports torch (``netinspect schemes`` lists the registry
instantly); the functions that touch tensors import it when they run.
"""

from .apply import apply_steps, check_step, reset_method
from .compile import compile_scheme
from .registry import (
    ALIASES,
    FAN_MODES,
    NONLINEARITIES,
    POST_OPS,
    REQUIRED,
    SCHEMES,
    SchemeError,
    SchemeInfo,
    SchemeParam,
    SchemeStep,
    lookup,
)
from .theory import TensorStats, expected_std, tensor_stats

__all__ = [
    "ALIASES",
    "FAN_MODES",
    "NONLINEARITIES",
    "POST_OPS",
    "REQUIRED",
    "SCHEMES",
    "SchemeError",
    "SchemeInfo",
    "SchemeParam",
    "SchemeStep",
    "TensorStats",
    "apply_steps",
    "check_step",
    "compile_scheme",
    "expected_std",
    "lookup",
    "reset_method",
    "tensor_stats",
]
