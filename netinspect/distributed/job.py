"""``netinspect init`` as one job over the ranks of a torchrun launch, and the directory savers that
``init --save DIR`` also uses in one process.

Order on every rank: join the process group; build on meta (every rank the same model, plan and
random-stream schedule); shard it as ``fully_shard`` does and allocate the local shards; replay the
single-process stream (default init, rules, ``--set``), keeping this rank's rows; then statistics
and the save, each whole tensor visiting only the rank that summarises or writes it. Nothing prints
here: the outcome (rank 0's rows, or the agreed failure) goes back to the command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import torch
from torch import nn

from netinspect.build import Built, default_init_steps
from netinspect.errors import ExitCode, Problem, RunFailure, UsageError
from netinspect.queries import InitRow, init_rows
from netinspect.schemes import TensorStats, tensor_stats
from netinspect.sources.safetensors import ALIASES_KEY
from netinspect.spec import ModelSpec, Rule
from netinspect.weights import Edit, apply_edits

from .group import Abort, Broken, Failure, Group, failure_of
from .launch import Launch
from .layout import Layout, shard_model, table
from .meta import meta_build
from .replay import Replayer, chains, scratch_bytes
from .report import plan_rows
from .save import INDEX_NAME, Staging, StreamWriter, check_target, entries_of, index_json, plan_files


@dataclass(frozen=True)
class InitRequest:
    """What ``init`` was asked: the parsed model and its flags. ``save`` is a directory unless it
    ends in ``.safetensors`` (one file); ``fmt`` is the directory's format."""

    spec: ModelSpec
    dtype: str | None = None
    seed: int | None = None
    allowed: dict[str, type[nn.Module]] = field(default_factory=dict)
    extra_rules: tuple[Rule, ...] = ()
    edits: tuple[Edit, ...] = ()
    save: Path | None = None
    fmt: str = "dcp"


@dataclass(eq=False)
class Outcome:
    """How the job ended on this rank: the agreed exit code and problems (every rank the same),
    and on rank 0 of a success the model and its init table."""

    rank: int
    code: int
    problems: list[Problem]
    built: Built | None = None
    rows: list[InitRow] | None = None
    group: Group | None = None
    trace: str = ""

    def finish(self) -> None:
        """Wait for every rank (so that none is stopped while another still reports), then leave
        the process group; a late SIGTERM from the launcher can no longer change the exit code."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.group is not None:
            try:
                self.group.barrier()
            except Broken:
                pass
            self.group.close()


def device_kind(text: str) -> str:
    """``--device`` under torchrun: cpu (gloo) or cuda (nccl, each rank on ``cuda:LOCAL_RANK``)."""
    kind = text.strip().lower().split(":", 1)[0]
    if kind not in ("cpu", "cuda"):
        raise UsageError.at(
            None, f"--device {text!r} cannot be sharded over ranks", "use --device cpu (gloo) or --device cuda (nccl, one GPU per rank)"
        )
    return kind


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(launch: Launch, device: str, prepare: Callable[[], InitRequest]) -> Outcome:
    """The whole job on this rank: join the process group, then :func:`execute`."""
    signal.signal(signal.SIGTERM, _interrupt)  # torchrun stops workers with SIGTERM: clean up as for Ctrl-C
    try:
        group = Group.start(launch, device_kind(device))
    except BaseException as exc:  # a bad --device is the same on every rank; a failed rendezvous ends them all
        failure = failure_of(exc, launch.rank)
        return Outcome(launch.rank, failure.code, list(failure.problems))
    return execute(group, prepare, launch.local_world)


def execute(group: Group, prepare: Callable[[], InitRequest], local_world: int = 1) -> Outcome:
    """``init`` on this rank of ``group``. Failures anywhere are agreed on by every rank (see
    ``Group``): each returns the same code and problems, the failing rank's named in them."""
    staging: list[Staging] = []
    try:
        request = prepare()
        built, rows = _work(request, group, staging, local_world)
        return Outcome(group.rank, 0, [], built, rows, group)
    except BaseException as exc:  # every failure, Ctrl-C included, becomes an exit code
        failure = _agree(exc, group, group.rank)
        problems = list(failure.problems)
        if failure.rank != group.rank and failure.code != ExitCode.INTERRUPTED:
            problems = [dataclasses.replace(p, message=f"rank {failure.rank}: {p.message}") for p in problems]
        talking = not group.broken and failure.code != ExitCode.INTERRUPTED  # interrupted ranks leave without waiting
        return Outcome(group.rank, failure.code, problems, group=group if talking else None, trace=failure.trace)
    finally:
        for s in staging:
            s.discard()


def _agree(exc: BaseException, group: Group, rank: int) -> Failure:
    """The failure every rank agrees on, once ``exc`` ended this rank's part."""
    if isinstance(exc, Abort):
        return exc.failure
    if isinstance(exc, Broken):
        lost = Problem(f"lost contact with the other ranks: {exc}", None, "a rank stopped; see its log")
        return Failure(rank, int(ExitCode.RUNTIME), (lost,))
    failure = failure_of(exc, rank)
    if isinstance(exc, KeyboardInterrupt):
        return failure  # every rank is being interrupted; no more collectives
    try:
        group.check(failure)
    except Abort as agreed:
        return agreed.failure
    except Broken:
        pass
    return failure


def _holder(key: str, tensor: torch.Tensor) -> nn.Module:
    """A module whose state_dict is ``{key: tensor}``, so that ``apply_edits`` edits that one tensor."""
    root = nn.Module()
    m = root
    *path, leaf = key.split(".")
    for part in path:
        child = nn.Module()
        m.add_module(part, child)
        m = child
    m.register_buffer(leaf, tensor)
    return root


def _work(request: InitRequest, group: Group, staging: list[Staging], local_world: int) -> tuple[Built | None, list[InitRow] | None]:
    built = meta_build(
        request.spec, group.device, dtype=request.dtype, seed=request.seed, allowed=request.allowed, extra_rules=request.extra_rules
    )
    edits = list(request.edits)
    apply_edits(built, edits)  # on meta: the same errors, in the same order, as in one process
    steps = default_init_steps(built, built.constructed)
    rows_plan = plan_rows(built.module, chains(built.plan))
    biggest = max((t.numel() * t.element_size() for t in (*built.module.parameters(), *built.module.buffers())), default=0)
    if request.save is not None:
        check_target(request.save, _is_dir(request.save))
    group.check()
    layout = shard_model(built, group, scratch_bytes(steps, built.plan, biggest), local_world)
    group.check()
    replay = Replayer(layout, group)
    torch.manual_seed(built.seed)
    replay.default_init(steps, built.ties)
    replay.rules(built.plan)
    for e in edits:
        replay.edit(e.path, lambda full, e=e: apply_edits(dataclasses.replace(built, module=_holder(e.path, full)), [e]))  # type: ignore[misc]
    replay.arena.release()
    wanted = [layout.by_attr[r.attr] for r in rows_plan]
    stats = save(layout, group, request.save, request.fmt, staging, wanted) if request.save is not None else _stats(layout, group, wanted)
    group.check()
    everyone = group.gather_objects(stats)
    if everyone is None:
        return None, None
    merged: dict[int, TensorStats] = {}
    for part in everyone:
        assert isinstance(part, dict)
        merged.update(part)
    built.device = group.device  # what the table's title names: cpu, or this rank's cuda:N
    return built, init_rows(rows_plan, [merged[i] for i in wanted])


def _is_dir(target: Path) -> bool:
    return target.suffix != ".safetensors"


def _stats(layout: Layout, group: Group, wanted: Sequence[int]) -> dict[int, TensorStats]:
    """Statistics of the ``wanted`` tensors, each on the rank it is delivered to: largest first, dealt
    round-robin, so that the tensors of one round (one per rank) are about the same size."""
    order = sorted(set(wanted), key=lambda i: -layout.shards[i].nbytes)
    out: dict[int, TensorStats] = {}
    shards = [layout.shards[i] for i in order]
    for pos, full in group.deliver(shards, [k % group.world for k in range(len(order))]):
        out[order[pos]] = tensor_stats(full)
    return out


def save(
    layout: Layout, group: Group, target: Path, fmt: str, staging: list[Staging], wanted: Sequence[int] = ()
) -> dict[int, TensorStats]:
    """Write ``layout``'s tensors to ``target`` (a directory in ``fmt``, or one ``.safetensors``
    file), complete or not at all; the statistics of the ``wanted`` tensors come on the way."""
    directory = _is_dir(target)
    check_target(target, directory)
    stage = Staging(target, group, directory)
    staging.append(stage)
    folder = stage.open()
    if directory and fmt == "dcp":
        stats = _stats(layout, group, wanted)
        _dcp_save(layout, group, folder)
    else:
        stats = _write_safetensors(layout, group, folder, directory, wanted)
    stage.commit()
    return stats


def _dcp_save(layout: Layout, group: Group, folder: Path) -> None:
    from torch.distributed.checkpoint import state_dict_saver

    group.check()
    state_dict_saver.save(layout.module.state_dict(), checkpoint_id=str(folder), no_dist=not group.dist)


def _write_safetensors(layout: Layout, group: Group, folder: Path, directory: bool, wanted: Sequence[int]) -> dict[int, TensorStats]:
    shapes = [(tuple(s.shape), s.dtype) for s in layout.shards]
    entries, aliases = entries_of(layout.keys, shapes)
    plans = plan_files(entries, aliases, group.world if directory else 1)
    mine = next((p for p in plans if p.owner == group.rank), None)
    writer: StreamWriter | None = None
    if mine is not None:
        path = folder / mine.name if directory else folder
        metadata = {"format": "pt", ALIASES_KEY: json.dumps(mine.aliases if directory else aliases)}
        writer = StreamWriter(path, mine.entries, metadata)
    need = set(wanted)
    stats: dict[int, TensorStats] = {}
    flat = [(e, p.owner) for p in plans for e in p.entries]
    # tensors nobody stores (there are none in a state_dict, but a Parameter could be outside it) still need statistics
    stored = {e.index for e, _ in flat}
    extra = sorted(need - stored)
    try:
        shards = [layout.shards[e.index] for e, _ in flat] + [layout.shards[i] for i in extra]
        owners = [o for _, o in flat] + [k % group.world for k in range(len(extra))]
        indices = [e.index for e, _ in flat] + extra
        for pos, full in group.deliver(shards, owners):
            index = indices[pos]
            if index in need:
                stats[index] = tensor_stats(full)
            if writer is not None and pos < len(flat):
                writer.write(index, full)
        if writer is not None:
            writer.close()
            writer = None
    finally:
        if writer is not None:
            writer.abandon()
    if directory and group.rank == 0:
        _write_text(folder / INDEX_NAME, index_json(plans, aliases))
    return stats


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def save_local(built: Built, target: Path, fmt: str) -> None:
    """``init --save DIR`` in one process: the same directory formats, from the built model."""
    group = Group.solo(built.device)
    layout = table(built.module, group)
    staging: list[Staging] = []
    try:
        save(layout, group, target, fmt, staging)
    except Abort as exc:  # one process: only the staging directory's own problems end up here
        raise RunFailure(list(exc.failure.problems)) from None
    finally:
        for s in staging:
            s.discard()
