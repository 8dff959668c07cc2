"""The ranks as one job: the process group, agreement on failure, and moving tensor rows between ranks.

Every rank runs the same sequence of collectives. A rank that fails keeps to it: its error handler
calls :meth:`Group.check` with the failure, which is the same collective every other rank makes before
its next exchange (``check`` comes first in each one), so all ranks learn of the failure together and
stop with the same exit code, instead of one rank waiting forever in a collective the other left.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

from netinspect.errors import DeviceError, ExitCode, NetinspectError, Problem, UsageError, first_line

from .launch import Launch

#: Seconds a rank waits in one collective for a peer (``NETINSPECT_TIMEOUT`` overrides it): long
#: enough for a slow peer to finish a large tensor, short enough that a dead one ends the job.
DEFAULT_TIMEOUT_S = 600


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong on one rank: its exit code and its problems."""

    rank: int
    code: int
    problems: tuple[Problem, ...]
    #: the Python traceback of an unexpected error (a bug), for --debug
    trace: str = ""


class Abort(Exception):
    """Raised on every rank once the ranks have agreed that the job failed."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.problems[0].message if failure.problems else f"exit {failure.code}")
        self.failure = failure


class Broken(Exception):
    """The ranks can no longer talk to each other (a peer died or timed out)."""


def failure_of(exc: BaseException, rank: int) -> Failure:
    """The exit code and problems for an exception raised on ``rank``."""
    if isinstance(exc, NetinspectError):
        return Failure(rank, int(exc.exit_code), tuple(exc.problems))
    if isinstance(exc, KeyboardInterrupt):
        return Failure(rank, int(ExitCode.INTERRUPTED), (Problem("interrupted"),))
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or (isinstance(exc, RuntimeError) and "alloc" in str(exc)):
        what = f"ran out of memory: {first_line(exc, 160)}"
        return Failure(rank, int(ExitCode.DEVICE), (Problem(what, None, "use more ranks, or a machine with more memory"),))
    import traceback

    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    bug = Problem(f"internal error: {type(exc).__name__}: {first_line(exc)}", None, "rerun with --debug for the traceback")
    return Failure(rank, int(ExitCode.RUNTIME), (bug,), trace)


def timeout_s(env: dict[str, str] | None = None) -> int:
    """The collective timeout: ``NETINSPECT_TIMEOUT`` seconds, else DEFAULT_TIMEOUT_S."""
    text = (env if env is not None else dict(os.environ)).get("NETINSPECT_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT_S
    if not text.isdigit() or int(text) < 1:
        raise UsageError.at(None, f"NETINSPECT_TIMEOUT={text!r} is not a number of seconds", "e.g. NETINSPECT_TIMEOUT=600")
    return int(text)


@dataclass(eq=False)
class Group:
    """The ranks of this job. ``dist`` is False for a single process without a process group (the
    collectives are then no-ops), which lets ``init --save DIR`` reuse the savers outside torchrun."""

    rank: int
    world: int
    device: torch.device
    dist: bool
    mesh: DeviceMesh | None = None
    #: set once a collective failed: no more collectives are attempted
    broken: bool = field(default=False)

    @classmethod
    def solo(cls, device: torch.device) -> Group:
        return cls(0, 1, device, False)

    @classmethod
    def start(cls, launch: Launch, device_kind: str) -> Group:
        """Join the job's process group: gloo on cpu, nccl on cuda with ``cuda:LOCAL_RANK``."""
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh

        timeout = datetime.timedelta(seconds=timeout_s())
        if device_kind == "cuda":
            if not torch.cuda.is_available() or launch.local_rank >= torch.cuda.device_count():
                raise DeviceError.at(
                    None,
                    f"rank {launch.rank} needs cuda:{launch.local_rank}, but {torch.cuda.device_count()} CUDA device(s) are visible",
                    "start at most one process per GPU (--nproc-per-node), or use --device cpu",
                )
            device = torch.device("cuda", launch.local_rank)
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", timeout=timeout, device_id=device)
        else:
            device = torch.device("cpu")
            dist.init_process_group("gloo", timeout=timeout)
        mesh = init_device_mesh(device.type, (launch.world,))
        return cls(dist.get_rank(), dist.get_world_size(), device, True, mesh)

    # --- agreement ------------------------------------------------------------------------------

    def check(self, failure: Failure | None = None) -> None:
        """Every rank says whether it failed; if any did, raise :class:`Abort` with the lowest
        failing rank's failure on every rank. The one collective that precedes every other."""
        if not self.dist:
            if failure is not None:
                raise Abort(failure)
            return
        import torch.distributed as dist

        if self.broken:
            raise Broken("the process group failed earlier")
        try:
            flag = torch.tensor([0 if failure is None else 1], dtype=torch.int32, device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if not int(flag.item()):
                return
            everyone: list[Failure | None] = [None] * self.world
            dist.all_gather_object(everyone, failure)
        except Exception as exc:
            self.broken = True
            raise Broken(first_line(exc)) from exc
        first = next(f for f in everyone if f is not None)
        raise Abort(first)

    def barrier(self) -> None:
        if self.dist and not self.broken:
            import torch.distributed as dist

            try:
                dist.barrier()
            except Exception as exc:
                self.broken = True
                raise Broken(first_line(exc)) from exc

    def broadcast(self, value: object) -> object:
        """Rank 0's ``value`` on every rank."""
        if not self.dist:
            return value
        import torch.distributed as dist

        box = [value]
        self._run(lambda: dist.broadcast_object_list(box, src=0))
        return box[0]

    def gather_objects(self, value: object) -> list[object] | None:
        """Every rank's ``value``, in rank order, on rank 0 (None elsewhere)."""
        if not self.dist:
            return [value]
        import torch.distributed as dist

        out: list[object] | None = [None] * self.world if self.rank == 0 else None
        self._run(lambda: dist.gather_object(value, out, dst=0))
        return out

    def close(self) -> None:
        if self.dist:
            import torch.distributed as dist

            if dist.is_initialized():
                try:
                    dist.destroy_process_group()
                except Exception:  # a broken group may fail to close; the process is ending anyway
                    pass

    def _run(self, op: Callable[[], object]) -> None:
        if self.broken:
            raise Broken("the process group failed earlier")
        try:
            op()
        except Exception as exc:
            self.broken = True
            raise Broken(first_line(exc)) from exc

    # --- tensors --------------------------------------------------------------------------------

    def all_gather(self, shard: Shard) -> torch.Tensor:
        """The full tensor of ``shard`` on every rank (a new tensor)."""
        full = torch.empty(shard.shape, dtype=shard.dtype, device=self.device)
        if not shard.sharded or not self.dist:
            full.copy_(shard.local)
            return full
        import torch.distributed as dist

        # all_gather takes equal pieces: every rank sends its rows padded to the largest piece
        counts = [(b - a) * shard.row_numel for a, b in shard.all_rows]
        size = max(counts)
        flat = full.view(-1)
        even = all(c == size for c in counts)
        pieces = list(torch.split(flat, counts)) if even else [torch.empty(size, dtype=shard.dtype, device=self.device) for _ in counts]
        mine = shard.local.reshape(-1)
        if not even:
            padded = torch.zeros(size, dtype=shard.dtype, device=self.device)
            padded[: mine.numel()].copy_(mine)
            mine = padded
        self.check()
        self._run(lambda: dist.all_gather(pieces, mine))
        if not even:
            for dst, src, n in zip(torch.split(flat, counts), pieces, counts, strict=True):
                dst.copy_(src[:n])
        return full

    def deliver(self, shards: Sequence[Shard], owners: Sequence[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Give each rank the full tensors it owns: yields (index into ``shards``, full tensor) for
        this rank's own, in order. Each round every rank receives at most one tensor, all rounds
        through one ``all_to_all`` of raw bytes, so that owners can write (or summarise) in parallel
        while a rank holds about one full tensor beyond its shards. A yielded tensor is valid until
        the next one is asked for (the buffers are reused: new pages cost as much as the copy)."""
        mine_by_rank: list[list[int]] = [[] for _ in range(self.world)]
        for i, owner in enumerate(owners):
            mine_by_rank[owner].append(i)
        rounds = max((len(x) for x in mine_by_rank), default=0)
        send_buf, recv_buf = _Bytes(self.device), _Bytes(self.device)
        for r in range(rounds):
            wanted = [lst[r] if r < len(lst) else None for lst in mine_by_rank]
            mine = wanted[self.rank]
            if not self.dist or self.world == 1:
                if mine is not None:
                    yield mine, shards[mine].local
                continue
            full = self._round(shards, wanted, mine, send_buf, recv_buf)
            if mine is not None and full is not None:
                yield mine, full

    def _round(
        self, shards: Sequence[Shard], wanted: list[int | None], mine: int | None, send_buf: _Bytes, recv_buf: _Bytes
    ) -> torch.Tensor | None:
        """One all_to_all: this rank's rows of every owner's tensor out, its own tensor's rows in."""
        import torch.distributed as dist

        parts = [shards[i] if i is not None and shards[i].sharded else None for i in wanted]
        in_splits = [0 if s is None else s.local.numel() * s.dtype.itemsize for s in parts]
        send = send_buf.take(sum(in_splits))
        at = 0
        for s, n in zip(parts, in_splits, strict=True):
            if s is not None and n:
                send[at : at + n].copy_(s.local.contiguous().view(-1).view(torch.uint8))
                at += n
        own = shards[mine] if mine is not None else None
        out_splits = [0] * self.world
        if own is not None and own.sharded:
            out_splits = [(b - a) * own.row_numel * own.dtype.itemsize for a, b in own.all_rows]
        recv = recv_buf.take(sum(out_splits))
        self.check()
        self._run(lambda: dist.all_to_all_single(recv, send, out_splits, in_splits))
        if own is None:
            return None
        return recv.view(own.dtype).view(own.shape) if own.sharded else own.local


class _Bytes:
    """A byte buffer reused from round to round, grown when a round needs more."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.buffer: torch.Tensor | None = None

    def take(self, n: int) -> torch.Tensor:
        if self.buffer is None or self.buffer.numel() < n:
            self.buffer = None
            self.buffer = torch.empty(n, dtype=torch.uint8, device=self.device)
        return self.buffer[:n]


@dataclass(eq=False)
class Shard:
    """A tensor of the model as this rank holds it: its global shape and dtype, and ``local``, either
    rows ``rows`` of dim 0 (``sharded``) or the whole tensor (buffers and 0-d parameters, which
    ``fully_shard`` leaves whole on every rank)."""

    shape: torch.Size
    dtype: torch.dtype
    local: torch.Tensor
    sharded: bool
    rows: tuple[int, int]
    all_rows: list[tuple[int, int]]

    @property
    def nbytes(self) -> int:
        return self.row_numel * (self.shape[0] if len(self.shape) else 1) * self.dtype.itemsize

    @property
    def row_numel(self) -> int:
        return math.prod(self.shape[1:])

    def take(self, full: torch.Tensor) -> None:
        """Keep this rank's part of ``full`` (the whole tensor's new values)."""
        with torch.no_grad():
            self.local.copy_(full[self.rows[0] : self.rows[1]] if self.sharded else full)
