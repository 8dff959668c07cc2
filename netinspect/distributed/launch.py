"""Whether this process is one rank of a ``torchrun`` job (torch-free: the CLI asks before importing torch)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from netinspect.errors import UsageError

#: The variables torchrun sets for every worker; all of them present means a launch.
LAUNCH_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True, slots=True)
class Launch:
    """This process's place in the job: global rank and world size, rank and count on this machine."""

    rank: int
    world: int
    local_rank: int
    local_world: int


def launched(env: Mapping[str, str] | None = None) -> Launch | None:
    """The launch torchrun describes in the environment, or None outside torchrun."""
    env = os.environ if env is None else env
    if not all(v in env for v in LAUNCH_VARS):
        return None
    try:
        rank, world, local_rank = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        raise UsageError.at(
            None,
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers: " + ", ".join(f"{v}={env[v]!r}" for v in LAUNCH_VARS),
            "start the job with torchrun (python -m torch.distributed.run)",
        ) from None
    if world < 1 or not 0 <= rank < world or local_rank < 0 or local_world < 1:
        raise UsageError.at(None, f"inconsistent launch: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local_rank}")
    return Launch(rank, world, local_rank, local_world)
