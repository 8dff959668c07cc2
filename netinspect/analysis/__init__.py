"""What a model costs: FLOPs, the bytes autograd saves, and the memory of a training step.

``analyse`` runs one training-mode forward and the backward of the sum of the outputs on any
``nn.Module`` (on meta without allocating anything) and returns per-call and total figures,
equal by construction to what ``torch.utils.flop_counter.FlopCounterMode`` counts and what
``torch.autograd.graph.saved_tensors_hooks`` sees (``engine.py``); repeated blocks run once
(``cache.py``); mixed precision runs as ``torch.autocast`` does (``autocast.py``); ``memory.py``
turns the figures into a training-memory estimate; ``tree.py`` arranges them in tree order.
"""

from .costs import Costs, ModuleCost, analyse
from .engine import Failure, ForwardFailed, StepRecord
from .memory import OPTIMIZERS, Estimate, Memory, ShardRow, estimate, shard_params
from .standins import without_heavy_imports
from .tree import Row, summary_tree

__all__ = [
    "OPTIMIZERS",
    "Costs",
    "Estimate",
    "Failure",
    "ForwardFailed",
    "Memory",
    "ModuleCost",
    "Row",
    "ShardRow",
    "StepRecord",
    "without_heavy_imports",
    "analyse",
    "estimate",
    "shard_params",
    "summary_tree",
]
