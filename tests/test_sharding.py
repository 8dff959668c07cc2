"""The FSDP2 split arithmetic against what torch.chunk (the split DTensor's Shard(0) uses) gives."""

from __future__ import annotations

import math

import torch

from netinspect.sharding import chunk_rows, padded_shard_numel


def test_chunk_rows_is_torch_chunk() -> None:
    for rows in range(0, 40):
        for world in range(1, 9):
            chunks = torch.chunk(torch.arange(rows), world) if rows else ()
            want = [(int(c[0]), int(c[-1]) + 1) for c in chunks if c.numel()]
            got = chunk_rows(rows, world)
            assert len(got) == world
            assert [(a, b) for a, b in got if b > a] == want
            assert sum(b - a for a, b in got) == rows


def test_padded_shard_is_the_largest_chunk_for_every_rank() -> None:
    for shape in [(10, 3), (7,), (1, 5, 5), (0, 4), (4096, 11008)]:
        for world in (1, 2, 3, 4, 8):
            largest = max((b - a for a, b in chunk_rows(shape[0], world)), default=0)
            assert padded_shard_numel(shape, world) == largest * math.prod(shape[1:])
