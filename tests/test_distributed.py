"""``init`` under torchrun (CPU, gloo) at world sizes 1, 2 and 4, compared with one process.

Each world size is one torchrun launch that runs every case (``tests/distributed/ranks.py``); the
outputs are read with the references themselves (``safetensors.torch.load_file``,
``torch.distributed.checkpoint.format_utils.dcp_to_torch_save``) and compared, tensor by tensor and
bit for bit, with the ``.safetensors`` that ``init --save`` writes in this process; the tables with
``queries.init_report``. Then the command line itself: rank 0's output equals one process's, a rank
that fails, a killed rank and an interrupted save end every rank and leave no directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import seeded, write
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from netinspect import queries, session
from netinspect.session import BuildOptions
from netinspect.weights import ALIASES_KEY, apply_edits, parse_edit, save_state

HERE = Path(__file__).resolve().parent
RANKS = HERE / "distributed" / "ranks.py"
WORLDS = (1, 2, 4)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]

#: One line per model: what it exercises. The formats below run for each.
CASES: list[dict[str, Any]] = [
    {"name": "tinylm", "model": "tinylm"},  # a tie: head.weight is embed.weight; Embedding's normal_ init
    {"name": "rgnet", "model": "rgnet"},  # nested repeated blocks: one FSDP unit each
    {"name": "d2l-init", "model": "d2l-init"},  # node rules: xavier_uniform, constant(42)
    {"name": "mlp-bn", "model": "mlp-bn"},  # buffers (running stats, an int64 counter)
    {"name": "tied", "model": "tied"},  # module reuse: one Linear at two paths
    {
        "name": "rgnet-rules",  # schemes on full tensors, post-operations on shards, --set by global index
        "model": "rgnet",
        "args": {
            "scheme": "orthogonal",
            "bias": "[uniform(-1, 1), mask_abs_below(0.5)]",
            "set": ["0.block1.0.weight[1,:]+=3", "1.bias[0]=7", "0.block3.2.bias[:]*=-1"],
        },
    },
    {"name": "mlp-bn-default", "model": "mlp-bn", "args": {"scheme": "default", "target": "1", "param": "*", "seed": 5}},
    {"name": "tinylm-bf16", "model": "tinylm", "args": {"dtype": "bfloat16", "scheme": "[normal(std=0.02), scale(2)]", "seed": 3}},
    {"name": "tinylm-orth", "model": "tinylm", "args": {"scheme": "orthogonal", "types": ["Linear"]}},  # QR: thread-sensitive
    # a reset that writes a child's bias (MultiheadAttention), RNN flat weights, padding rows, frozen and 1-row tensors
    {"name": "assorted", "model": str(HERE / "distributed" / "assorted.yaml")},
    {
        "name": "assorted-rules",
        "model": str(HERE / "distributed" / "assorted.yaml"),
        "args": {"scheme": "default", "target": "attn", "param": "*", "bias": "[zeros, add(0.5)]", "seed": 1},
    },
]
if "llama-tiny" in session.config_names():
    CASES.append({"name": "llama-tiny", "model": "llama-tiny"})  # grouped-query attention
FORMATS = ("dcp", "safetensors")


def _jobs() -> list[dict[str, Any]]:
    jobs = [{**c, "name": f"{c['name']}-{fmt}", "save": fmt} for c in CASES for fmt in FORMATS]
    jobs.append({**CASES[0], "name": "tinylm-file", "save": "file"})
    jobs.append({"name": "bad-set", "model": "rgnet", "save": "dcp", "args": {"set": ["0.block1.0.weight[9,0]=1"]}})
    return jobs


@pytest.fixture(scope="module", params=[pytest.param(w, marks=pytest.mark.slow) for w in WORLDS], ids=lambda w: f"world{w}")
def launched(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """One torchrun launch at this world size running every job; yields (world, its output folder)."""
    world = request.param
    out = tmp_path_factory.mktemp(f"world{world}")
    cases = out / "cases.json"
    cases.write_text(json.dumps(_jobs()))
    done = subprocess.run(
        [*TORCHRUN, f"--nproc-per-node={world}", str(RANKS), str(out), str(cases)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(NETINSPECT_THREADS=str(torch.get_num_threads())),  # orthogonal's QR as this process runs it
    )
    assert done.returncode == 0, done.stderr[-3000:]
    yield world, out


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETINSPECT_", "TORCHELASTIC_"))}
    env.update(extra)
    return env


@dataclasses.dataclass
class Reference:
    rows: list[dict[str, Any]]
    stored: dict[str, torch.Tensor]
    aliases: dict[str, str]

    def state(self) -> dict[str, torch.Tensor]:
        """Every state_dict key, aliases included."""
        return {**self.stored, **{a: self.stored[k] for a, k in self.aliases.items()}}


_refs: dict[str, Reference] = {}


def reference(case: dict[str, Any], tmp: Path) -> Reference:
    """``init --save x.safetensors`` in this process (the library path the command takes)."""
    key = json.dumps(case, sort_keys=True)
    if key not in _refs:
        a = case.get("args", {})
        extra = session.cli_rules(a.get("scheme"), a.get("target", "*"), a.get("param", "weight"), a.get("bias"), a.get("types", []))
        built = session.make(case["model"], BuildOptions(dtype=a.get("dtype"), seed=a.get("seed"), extra_rules=extra)).built
        apply_edits(built, [parse_edit(s) for s in a.get("set", [])])
        rows = [dataclasses.asdict(r) for r in queries.init_report(built)]
        path = tmp / "ref.safetensors"
        save_state(built, path)
        with safe_open(str(path), framework="pt") as f:
            aliases = json.loads((f.metadata() or {})[ALIASES_KEY])
        _refs[key] = Reference(rows, load_file(str(path)), aliases)
    return _refs[key]


def same_number(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def assert_rows(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [r["name"] for r in got] == [r["name"] for r in want]
    for g, w in zip(got, want, strict=True):
        for field in w:
            assert same_number(g[field], w[field]), (w["name"], field, g[field], w[field])


def assert_same_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for k, w in want.items():
        g = got[k]
        assert g.dtype == w.dtype and g.shape == w.shape, k
        assert torch.equal(g.view(-1).view(torch.uint8), w.contiguous().view(-1).view(torch.uint8)), f"{k} differs"


def read_dcp(folder: Path, tmp: Path) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    flat = tmp / (folder.name + ".pt")
    dcp_to_torch_save(str(folder), str(flat))
    return dict(torch.load(flat, weights_only=True))


def read_sharded_safetensors(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    files = sorted({f for f in index["weight_map"].values()})
    n = len(files)
    assert files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*files, "model.safetensors.index.json"])
    tensors: dict[str, torch.Tensor] = {}
    shard_aliases: dict[str, str] = {}
    for name in files:
        part = load_file(str(folder / name))
        assert sorted(part) == sorted(k for k, f in index["weight_map"].items() if f == name)
        tensors.update(part)
        with safe_open(str(folder / name), framework="pt") as f:
            shard_aliases.update(json.loads((f.metadata() or {})[ALIASES_KEY]))
            assert all(k in part for k in json.loads((f.metadata() or {})[ALIASES_KEY]).values())
    aliases = json.loads(index["metadata"][ALIASES_KEY])
    assert aliases == shard_aliases
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
    return tensors, aliases


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.parametrize("fmt", FORMATS)
def test_outputs_equal_one_process(launched: tuple[int, Path], case: dict[str, Any], fmt: str, tmp_path: Path) -> None:
    world, out = launched
    ref = reference(case, tmp_path)
    name = f"{case['name']}-{fmt}"
    result = json.loads((out / f"{name}.json").read_text())
    assert result["code"] == 0, result["problems"]
    assert_rows(result["rows"], ref.rows)
    folder = out / name
    if fmt == "dcp":
        assert (folder / ".metadata").is_file()
        assert len(list(folder.glob("*.distcp"))) == world  # every rank wrote its own shards
        assert_same_tensors(read_dcp(folder, tmp_path), ref.state())
    else:
        tensors, aliases = read_sharded_safetensors(folder)
        assert aliases == ref.aliases  # a tied tensor stored once, its other paths named
        assert_same_tensors(tensors, ref.stored)


@pytest.mark.parametrize("fmt", FORMATS)
def test_sharded_outputs_are_models(launched: tuple[int, Path], fmt: str, cli: Any, tmp_path: Path) -> None:
    """A sharded init's directory is a MODEL (params), equals the single-process .safetensors of the
    same model value for value (diff, exit 0), and loads back into the model (--weights DIR)."""
    from safetensors.torch import load_file as load

    world, out = launched
    case = CASES[0]
    folder = out / f"{case['name']}-{fmt}"
    single = tmp_path / "single.safetensors"
    cli.run("init", case["model"], "--save", single)
    keys = {p["name"]: p["shape"] for p in cli.json("params", folder)["parameters"]}
    model_keys = {e["key"]: e["shape"] for e in cli.json("state-dict", case["model"])["entries"]}
    assert set(keys) <= set(model_keys) and all(model_keys[k] == v for k, v in keys.items())
    assert cli.json("diff", single, folder, "--values", code=0)["equal"]
    restored = tmp_path / "restored.safetensors"
    cli.run("init", case["model"], "--seed", 99, "--weights", folder, "--save", restored)
    again = load(str(restored))
    for k, v in load(str(single)).items():
        assert torch.equal(again[k], v), k


def test_one_safetensors_file(launched: tuple[int, Path], tmp_path: Path) -> None:
    _, out = launched
    ref = reference(CASES[0], tmp_path)
    path = out / "tinylm-file.safetensors"
    assert_same_tensors(load_file(str(path)), ref.stored)
    with safe_open(str(path), framework="pt") as f:
        assert json.loads((f.metadata() or {})[ALIASES_KEY]) == ref.aliases


def test_a_bad_edit_is_the_same_error_on_every_rank_and_writes_nothing(launched: tuple[int, Path]) -> None:
    _, out = launched
    result = json.loads((out / "bad-set.json").read_text())
    assert result["code"] == 2
    assert result["problems"] == [
        "netinspect: error: --set '0.block1.0.weight[9,0]=1': index 9 is out of bounds for dimension 0 with size 8; "
        "hint: '0.block1.0.weight' has shape [8, 4]"
    ]
    assert not (out / "bad-set").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left either


# --- the command line under torchrun --------------------------------------------------------------

RANK_MAIN = HERE / "distributed" / "rank_main.py"


def torchrun(world: int, args: list[str], tmp: Path, rank_env: dict[int, str] | None = None) -> subprocess.Popen[str]:
    """``netinspect ARGS`` on ``world`` ranks; each rank's stdout and stderr go to files under
    ``tmp/logs``, its exit code to ``tmp/exits/RANK``; ``rank_env`` sets NAME=VALUE on one rank only."""
    (tmp / "exits").mkdir()
    env = _env(EXIT_DIR=str(tmp / "exits"), **{f"RANK_ENV_{r}": v for r, v in (rank_env or {}).items()})
    cmd = [*TORCHRUN, f"--nproc-per-node={world}", f"--log-dir={tmp / 'logs'}", "--redirects=3", str(RANK_MAIN), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def rank_output(tmp: Path, rank: int) -> tuple[str, str]:
    [folder] = list((tmp / "logs").glob(f"*/attempt_0/{rank}"))
    return (folder / "stdout.log").read_text(), (folder / "stderr.log").read_text()


def rank_exits(tmp: Path) -> dict[int, int]:
    return {int(p.name): int(p.read_text()) for p in (tmp / "exits").iterdir()}


def left_in(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name not in ("logs", "exits"))


@pytest.mark.slow
def test_command_prints_on_rank_0_what_one_process_prints(cli: Any, tmp_path: Path) -> None:
    args = ["init", "tinylm", "--scheme", "xavier", "--types", "Linear", "--target", "blocks.*", "--bias", "zeros"]
    args += ["--set", "embed.weight[0,:]=1"]
    proc = torchrun(2, [*args, "--save", str(tmp_path / "ck"), "--format", "safetensors"], tmp_path)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert rank_exits(tmp_path) == {0: 0, 1: 0}
    one = cli.run(*args, "--save", tmp_path / "one.safetensors")
    out0, err0 = rank_output(tmp_path, 0)
    assert out0.replace(str(tmp_path / "ck"), "X") == one.stdout.replace(str(tmp_path / "one.safetensors"), "X")
    assert err0 == ""
    assert rank_output(tmp_path, 1) == ("", "")  # only rank 0 prints
    tensors, _ = read_sharded_safetensors(tmp_path / "ck")
    assert_same_tensors(tensors, load_file(str(tmp_path / "one.safetensors")))


@pytest.mark.slow
def test_a_rank_that_fails_ends_every_rank_with_its_exit_code(tmp_path: Path) -> None:
    target = tmp_path / "ck"
    # rank 1 alone sees a machine without memory: it refuses (exit 4) while rank 0 could go on
    proc = torchrun(2, ["init", "rgnet", "--save", str(target)], tmp_path, {1: "NETINSPECT_AVAILABLE_BYTES=1"})
    proc.communicate(timeout=180)
    assert proc.returncode != 0
    assert rank_exits(tmp_path) == {0: 4, 1: 4}
    out0, err0 = rank_output(tmp_path, 0)
    assert out0 == ""
    assert err0.startswith("netinspect: error: rank 1: ") and "1 B available" in err0
    assert rank_output(tmp_path, 1) == ("", "")
    assert left_in(tmp_path) == []  # no directory, no temporary


def _big_model(tmp_path: Path) -> Path:
    """A model whose save takes long enough to be caught in the act (64M parameters, 256 MB)."""
    path = tmp_path / "big.yaml"
    path.write_text("netinspect: 1\nmodel:\n  - Embedding(65536, 512)\n  - Linear(512, 512)\n  - Embedding(65536, 512)\n")
    return path


def _wait_for_temporary(tmp_path: Path, proc: subprocess.Popen[str], name: str) -> None:
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(f".{name}.tmp-") for p in tmp_path.iterdir()):
        assert proc.poll() is None, "the job ended before its save began"
        assert time.monotonic() < deadline, "the save never began"
        time.sleep(0.005)


def _workers(proc: subprocess.Popen[str]) -> dict[int, int]:
    """rank → pid of the torchrun workers (children of the launcher, by their RANK variable)."""
    out: dict[int, int] = {}
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != proc.pid:
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                out[int(item[5:])] = pid
    return out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["interrupt", "kill-rank"])
def test_an_interrupted_save_leaves_nothing(tmp_path: Path, how: str) -> None:
    model = _big_model(tmp_path)
    proc = torchrun(2, ["init", str(model), "--save", str(tmp_path / "ck"), "--format", "safetensors"], tmp_path)
    _wait_for_temporary(tmp_path, proc, "ck")
    if how == "interrupt":
        proc.send_signal(signal.SIGINT)  # Ctrl-C: torchrun passes it to every rank
    else:
        os.kill(_workers(proc)[1], signal.SIGKILL)  # a rank dies mid-save
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    exits = rank_exits(tmp_path)
    if how == "interrupt":
        assert exits == {0: 130, 1: 130}
        assert rank_output(tmp_path, 0)[1] == "netinspect: error: interrupted\n"
    else:
        # rank 0 learns it from the broken connection (exit 1) or from torchrun stopping it (130)
        assert set(exits) == {0} and exits[0] in (1, 130)
    assert rank_output(tmp_path, 1) == ("", "")
    assert left_in(tmp_path) == ["big.yaml"]  # no directory, no temporary


# --- without launching: the pieces, and --save DIR in one process -----------------------------------


def test_torchrun_is_recognised_by_its_variables() -> None:
    from netinspect.distributed import Launch, launched
    from netinspect.errors import UsageError

    assert launched({}) is None
    assert launched({"RANK": "0", "WORLD_SIZE": "2"}) is None  # LOCAL_RANK missing: not torchrun
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert launched(env) == Launch(rank=3, world=4, local_rank=1, local_world=2)
    for bad in ({**env, "RANK": "x"}, {**env, "RANK": "4"}):
        with pytest.raises(UsageError):
            launched(bad)


def test_orthogonal_runs_with_the_threads_of_one_process() -> None:
    from netinspect.distributed.replay import one_process_threads, physical_cores

    assert one_process_threads({"NETINSPECT_THREADS": "3", "OMP_NUM_THREADS": "5"}) == 3
    assert one_process_threads({"OMP_NUM_THREADS": "5", "LOCAL_RANK": "0"}) == 5  # the user's setting
    # the 1 torchrun gives its workers is not what a plain process would use
    assert one_process_threads({"OMP_NUM_THREADS": "1", "LOCAL_RANK": "0"}) == physical_cores()
    assert one_process_threads({"OMP_NUM_THREADS": "1"}) == 1
    assert one_process_threads({}) == physical_cores()


@pytest.mark.slow
def test_physical_cores_is_what_torch_starts_with() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True, text=True, env=env)
    from netinspect.distributed.replay import physical_cores

    assert int(out.stdout) == physical_cores()


@pytest.mark.parametrize(
    ("model", "units"),
    [
        ("gpt2-xl", [f"transformer.h.{i}" for i in range(48)]),  # each transformer block; wte/lm_head (tied) stay with the root
        ("tinylm", ["blocks.0", "blocks.1"]),
        ("rgnet", [f"0.block{i}" for i in range(4)]),
        ("tied", []),  # the shared Linear sits at two paths: it stays with the root
        ("mlp", []),
    ],
)
def test_fsdp_units_are_the_blocks_of_repeated_stacks(model: str, units: list[str]) -> None:
    from netinspect.distributed.meta import fsdp_units, meta_build

    root = meta_build(session.load_spec(model), torch.device("cpu")).module
    names = {id(m): p for p, m in root.named_modules()}
    assert sorted(names[id(m)] for m in fsdp_units(root)) == sorted(units)


def test_a_lazy_model_is_refused_for_sharding() -> None:
    """A lazy model's shapes and values come from a first forward of the whole model: no rank can replay it."""
    from netinspect.distributed.meta import meta_build
    from netinspect.errors import UsageError

    with pytest.raises(UsageError, match="lazy modules"):
        meta_build(session.load_spec("d2l-lazy"), torch.device("cpu"))


class Scaled(nn.Module):
    """A granted class outside torch.nn: its constructor may draw anything."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(n))


ENCODER = (
    "netinspect: 1\nmodel:\n  - TransformerEncoder(TransformerEncoderLayer(16, 4, dim_feedforward=32), 2, enable_nested_tensor=False)\n"
)


def test_a_model_whose_construction_cannot_be_replayed_is_refused_for_sharding(tmp_path: Path) -> None:
    """Sharded init replays the default init of the meta build. A constructor that takes a module may
    copy it (TransformerEncoder deep-copies its layer after the layer drew its values), and a granted
    class may draw anything: the replay would not give one process's values, so both are refused."""
    from netinspect.build import Recipe, construct
    from netinspect.build.materialise import materialise
    from netinspect.distributed.meta import meta_build
    from netinspect.errors import UsageError

    spec = session.load_spec(str(write(tmp_path, "enc.yaml", ENCODER)))
    _, replayed = construct(Recipe.of(spec), torch.device("meta"), torch.device("cpu"))
    assert not replayed.replayable
    materialise(replayed, None)
    reference = seeded(
        lambda: nn.Sequential(nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, dim_feedforward=32), 2, enable_nested_tensor=False))
    )
    ref_sd, got_sd = reference.state_dict(), replayed.module.state_dict()
    assert list(ref_sd) == list(got_sd)
    assert any(not torch.equal(ref_sd[k], got_sd[k]) for k in ref_sd)  # the replay is not the construction
    with pytest.raises(UsageError, match="cannot be replayed shard by shard"):
        meta_build(spec, torch.device("cpu"))

    granted = session.load_spec(str(write(tmp_path, "granted.yaml", "netinspect: 1\nmodel:\n  - Linear(4, 4)\n  - Scaled(4)\n")))
    with pytest.raises(UsageError, match="cannot be replayed shard by shard"):
        meta_build(granted, torch.device("cpu"), allowed={"Scaled": Scaled})
    assert meta_build(session.load_spec("tinylm"), torch.device("cpu")).replayable


def test_streamed_safetensors_files_read_back_with_the_reference(tmp_path: Path) -> None:
    from netinspect.distributed.save import Entry, StreamWriter, plan_files

    tensors = {
        "a": torch.randn(5, 3),
        "b": torch.arange(7, dtype=torch.int64),
        "c": torch.randn(2, 2).to(torch.bfloat16),
        "d": torch.tensor(True),
        "e": torch.empty(0, 4),
    }
    entries = [Entry(k, tuple(t.shape), t.dtype, i) for i, (k, t) in enumerate(tensors.items())]
    plans = plan_files(entries, {"a2": "a"}, 2)
    assert sorted(e.key for p in plans for e in p.entries) == sorted(tensors)
    assert [p.name for p in plans] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    for plan in plans:
        writer = StreamWriter(tmp_path / plan.name, plan.entries, {"format": "pt", ALIASES_KEY: json.dumps(plan.aliases)})
        for e in plan.entries:
            writer.write(e.index, tensors[e.key])
        writer.close()
        back = load_file(str(tmp_path / plan.name))
        assert_same_tensors(back, {e.key: tensors[e.key] for e in plan.entries})
    assert [p.aliases for p in plans if "a" in [e.key for e in p.entries]] == [{"a2": "a"}]
    writer = StreamWriter(tmp_path / "short.safetensors", entries, {})
    with pytest.raises(RuntimeError, match="expected 'a'"):
        writer.write(1, tensors["b"])
    writer.abandon()


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_dir_in_one_process(cli: Any, tmp_path: Path, fmt: str) -> None:
    args = ["init", "tinylm", "--scheme", "normal(std=0.02)", "--types", "Linear", "--set", "ln_f.bias[0]=1"]
    cli.run(*args, "--save", tmp_path / "one.safetensors")
    ref = load_file(str(tmp_path / "one.safetensors"))
    result = cli.run(*args, "--save", tmp_path / "ck", "--format", fmt)
    assert result.stdout.endswith(f"saved the state_dict to {tmp_path / 'ck'}\n")
    if fmt == "dcp":
        got = read_dcp(tmp_path / "ck", tmp_path)
        assert torch.equal(got["head.weight"], got["embed.weight"])  # a .pt-like state_dict: every key
        del got["head.weight"]
        assert_same_tensors(got, ref)
    else:
        tensors, aliases = read_sharded_safetensors(tmp_path / "ck")
        assert aliases == {"head.weight": "embed.weight"}
        assert_same_tensors(tensors, ref)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_save_dir_usage_errors(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    for args, message in [
        (["--format", "dcp"], "--format applies to --save DIR"),
        (["--save", tmp_path / "x.safetensors", "--format", "dcp"], "--format applies to a directory"),
        (["--save", tmp_path / "taken"], "already exists"),
        (["--save", tmp_path / "no" / "ck"], "does not exist"),
        (["--save", tmp_path / "x.bin"], "unknown format"),
        (["--save", tmp_path / "ck", "--format", "zip"], "zip"),
    ]:
        result = cli.run("init", "mlp", *args, code=2)
        assert message in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
