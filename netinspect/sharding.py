"""How FSDP2's ``fully_shard`` splits a tensor over ranks (torch-free arithmetic).

Each parameter is sharded on dim 0 as ``torch.chunk(world)`` cuts it: every rank but the last few
holds ``ceil(rows / world)`` rows, the rest fewer or none. FSDP2 allocates every rank's shard
padded to that same ``ceil(rows / world)`` rows (so that all-gather works on equal pieces): the
memory a rank holds for a tensor is the padded shard, whatever its real rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def chunk_rows(rows: int, world: int) -> list[tuple[int, int]]:
    """[start, stop) of dim 0 that each rank keeps, as ``torch.chunk(t, world)`` splits it."""
    if world < 1:
        raise ValueError(f"world size must be at least 1, got {world}")
    size = math.ceil(rows / world) if rows else 0
    out = []
    for rank in range(world):
        start = min(rank * size, rows)
        out.append((start, min(start + size, rows)))
    return out


def padded_shard_numel(shape: Sequence[int], world: int) -> int:
    """Elements every rank allocates for a tensor of ``shape``: ``ceil(rows / world)`` rows of the
    rest of the shape (a 0-d tensor is one row)."""
    if not shape:
        return math.ceil(1 / world)
    rows, rest = shape[0], math.prod(shape[1:])
    return math.ceil(rows / world) * rest
