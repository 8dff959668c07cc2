"""ModelSpec → ``nn.Module``: meta first, then materialised on the chosen device.

``assemble`` constructs declarations in plain-PyTorch order (``clone`` copies equal meta
constructions instead of repeating them), ``ties`` binds ``tie:``, ``plan`` resolves init rules,
``materialise`` allocates and replays the default init, and ``pipeline.build`` runs them in order.
``walk`` holds the module-tree walks the queries use.
"""

from .assemble import ScopedRule, no_init, resolve_classes
from .built import Built
from .materialise import SKIP_DEFAULT_MIN_NUMEL, InitStep, allocate, default_init_steps
from .pipeline import Recipe, build, construct
from .plan import Planned, plan_rules
from .ties import TieBinding, retie
from .walk import all_named_modules, param_paths, unique_bytes, unique_modules

__all__ = [
    "SKIP_DEFAULT_MIN_NUMEL",
    "Built",
    "InitStep",
    "Planned",
    "Recipe",
    "ScopedRule",
    "TieBinding",
    "all_named_modules",
    "allocate",
    "build",
    "construct",
    "default_init_steps",
    "no_init",
    "param_paths",
    "plan_rules",
    "resolve_classes",
    "retie",
    "unique_bytes",
    "unique_modules",
]
