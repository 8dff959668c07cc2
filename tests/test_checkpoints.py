"""Weights files and checkpoints as MODEL (SPEC §5): every name, shape, dtype, count, alias and value
that netinspect reports is compared with what ``safetensors``, ``torch.load`` and
``torch.distributed.checkpoint`` report for the same files, written here by those libraries.
The hostile corpus (tests/checkpoints/make_hostile.py) is generated at test time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reference_models as R
import torch
import torch.distributed.checkpoint as dcp
from conftest import TESTS, Cli, d2l_mlp, one_json_document, probe, seeded, tie_groups
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.filesystem import FileSystemReader

sys.path.insert(0, str(TESTS / "checkpoints"))  # the corpus generator (bench/checkpoints.py owns the package name)
from make_hostile import NAMES, Case, make_corpus, safetensors_bytes  # noqa: E402

# --- files written by the reference libraries ---------------------------------------------------


def every_dtype() -> dict[str, torch.Tensor]:
    """One tensor of each dtype safetensors and torch share, odd shapes included (scalar, empty)."""
    g = torch.Generator().manual_seed(7)
    out = {
        "f64": torch.randn(3, 2, generator=g, dtype=torch.float64),
        "f32.scalar": torch.tensor(1.5),
        "f32.empty": torch.empty(0, 3),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 2, 2, generator=g).bfloat16(),
        "i64": torch.arange(4),
        "i32": torch.arange(3, dtype=torch.int32),
        "i16": torch.arange(3, dtype=torch.int16),
        "i8": torch.arange(-2, 2, dtype=torch.int8),
        "u8": torch.arange(5, dtype=torch.uint8),
        "u16": torch.arange(2).to(torch.uint16),
        "u32": torch.arange(2).to(torch.uint32),
        "u64": torch.arange(2).to(torch.uint64),
        "bool": torch.tensor([True, False, True]),
        "f8e4m3": torch.randn(4, generator=g).to(torch.float8_e4m3fn),
        "f8e5m2": torch.randn(4, generator=g).to(torch.float8_e5m2),
        "c64": torch.randn(2, generator=g, dtype=torch.complex64),
    }
    return out


def mlp_state(seed: int = 0) -> dict[str, torch.Tensor]:
    return dict(seeded(d2l_mlp, seed).state_dict())


def write_sharded(folder: Path, sd: dict[str, torch.Tensor], shards: int) -> Path:
    """Shards written by safetensors, and the index a Hugging Face writer would make for them."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = list(sd)
    weight_map: dict[str, str] = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: sd[k].contiguous() for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    total = sum(t.numel() * t.element_size() for t in sd.values())
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return index


def dcp_save(folder: Path, sd: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(sd, checkpoint_id=str(folder))


def rows(cli: Cli, *args: object) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in cli.json("params", *args)["parameters"]}


def torch_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --- safetensors --------------------------------------------------------------------------------


def test_safetensors_names_shapes_dtypes_as_safetensors_reports(cli: Cli, tmp_path: Path) -> None:
    sd = every_dtype()
    path = tmp_path / "all.safetensors"
    save_file(sd, str(path))
    loaded = load_file(str(path))
    got = rows(cli, path)
    with safe_open(str(path), framework="pt") as f:
        assert set(got) == set(f.keys())
        for key in f.keys():
            assert got[key]["shape"] == list(f.get_slice(key).get_shape()), key
    for key, t in loaded.items():
        assert got[key]["dtype"] == torch_name(t.dtype), key
        assert got[key]["numel"] == t.numel(), key
        assert got[key]["requires_grad"] is None and got[key]["device"] is None
    totals = cli.json("params", path)["totals"]
    assert totals["unique"] == totals["by_path"] == sum(t.numel() for t in loaded.values())
    assert totals["bytes"] == sum(t.numel() * t.element_size() for t in loaded.values())
    assert totals["trainable"] is None


def test_safetensors_values_as_safetensors_reads_them(cli: Cli, tmp_path: Path) -> None:
    sd = every_dtype()
    path = tmp_path / "all.safetensors"
    save_file(sd, str(path))
    loaded = load_file(str(path))
    doc = cli.json("state-dict", path, "--values")
    for entry in doc["entries"]:
        ref = loaded[entry["key"]]
        expected = (torch.view_as_real(ref) if ref.is_complex() else ref).tolist()
        assert entry["values"] == expected, entry["key"]
        assert entry["kind"] is None
    for key in ("bf16", "f8e4m3", "u64", "f32.scalar"):
        assert cli.run("state-dict", path, "--key", key).stdout.strip() == str(loaded[key])


def test_state_dict_key_reads_only_that_tensor(cli: Cli, tmp_path: Path) -> None:
    """Bytes read (``rchar`` of /proc/self/io) by ``state-dict --key``: the header and that tensor."""
    sd = {f"layer{i}.weight": torch.full((256, 1024), float(i)) for i in range(8)}  # 1 MiB each
    path = tmp_path / "big.safetensors"
    save_file(sd, str(path))
    header = 8 + int.from_bytes(path.read_bytes()[:8], "little")

    def rchar() -> int:
        with open("/proc/self/io", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar"))

    cli.run("state-dict", path, "--key", "layer0.weight")  # imports and caches warmed
    before = rchar()
    out = cli.run("state-dict", path, "--key", "layer5.weight").stdout
    read = rchar() - before
    assert out.strip() == str(sd["layer5.weight"])
    one = 256 * 1024 * 4
    assert one <= read <= one + header + 64 * 1024, f"read {read:,} bytes for one tensor of {one:,}"


def test_aliases_from_metadata_and_equal_offsets(cli: Cli, tmp_path: Path) -> None:
    """``init --save`` stores a tie once (netinspect.aliases); a hand-written header may point two
    names at the same bytes. Both are one tensor under two names."""
    saved = tmp_path / "tiny.safetensors"
    cli.run("init", "tinylm", "--save", saved)
    ref = seeded(R.REFERENCES["tinylm"])
    groups = cli.json("shared", saved)["groups"]
    assert [sorted(g["paths"]) for g in groups] == [sorted(g) for g in tie_groups(ref)]
    assert groups[0]["cause"] == "alias"
    assert set(rows(cli, saved)) == set(ref.state_dict())  # every key, the alias included
    assert cli.json("params", saved)["totals"]["unique"] == sum(p.numel() for p in ref.parameters())

    data = torch.arange(6, dtype=torch.float32).numpy().tobytes()
    entry = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    path = tmp_path / "same.safetensors"
    path.write_bytes(safetensors_bytes({"a.weight": entry, "b.weight": entry}, data))
    groups = cli.json("shared", path)["groups"]
    assert groups == [{"paths": ["a.weight", "b.weight"], "shape": [2, 3], "numel": 6, "cause": "offsets", "modules": ["a", "b"]}]
    values = {e["key"]: e["values"] for e in cli.json("state-dict", path, "--values")["entries"]}
    assert values["a.weight"] == values["b.weight"] == torch.arange(6.0).reshape(2, 3).tolist()


def test_tree_of_a_checkpoint_is_the_module_tree(cli: Cli, tmp_path: Path) -> None:
    """The hierarchy of the dotted keys of a saved rgnet: one node per module that holds parameters,
    each with the count plain torch gives for that module."""
    ref = seeded(R.REFERENCES["rgnet"])
    path = tmp_path / "rgnet.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    doc = cli.json("tree", path)
    nodes: dict[str, dict[str, Any]] = {}
    stack = [doc["root"]]
    while stack:
        node = stack.pop()
        nodes[node["path"]] = node
        stack.extend(node["children"])
    expected = {p: sum(q.numel() for q in m.parameters()) for p, m in ref.named_modules() if any(True for _ in m.parameters())}
    assert {p: n["params_total"] for p, n in nodes.items()} == expected
    for p, m in ref.named_modules():
        if p in nodes:
            assert nodes[p]["params_own"] == sum(q.numel() for q in m.parameters(recurse=False))
            assert nodes[p]["type"] == "-"
    text = cli.run("tree", path).stdout
    assert "(block0 … block3): ×4 identical, 76 params each" in text


def test_module_option_names_relative_like_named_parameters(cli: Cli, tmp_path: Path) -> None:
    ref = seeded(R.REFERENCES["rgnet"])
    path = tmp_path / "rgnet.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    got = rows(cli, path, "--module", "0.block1")
    assert set(got) == {n for n, _ in ref[0].block1.named_parameters()}
    assert cli.run("params", path, "--module", "0.blok1", code=2).stderr.count("did you mean") == 1


# --- sharded safetensors ------------------------------------------------------------------------


def test_sharded_index_and_its_folder(cli: Cli, tmp_path: Path) -> None:
    sd = every_dtype() | mlp_state()
    index = write_sharded(tmp_path / "ckpt", sd, shards=3)
    shards = sorted(index.parent.glob("*.safetensors"))
    assert len(shards) == 3
    reference: dict[str, torch.Tensor] = {}
    for shard in shards:
        reference.update(load_file(str(shard)))
    by_index = cli.json("params", index)
    by_folder = cli.json("params", index.parent)
    assert by_index["parameters"] == by_folder["parameters"]
    got = {r["name"]: r for r in by_index["parameters"]}
    assert set(got) == set(reference)
    for key, t in reference.items():
        assert (got[key]["shape"], got[key]["dtype"]) == (list(t.shape), torch_name(t.dtype)), key
    assert cli.run("state-dict", index.parent, "--key", "2.bias").stdout.strip() == str(reference["2.bias"])
    assert cli.run("validate", index).stdout == "ok\n"


def test_index_need_not_list_a_metadata_alias(cli: Cli, tmp_path: Path) -> None:
    """A shard written by ``init --save`` names its tied key in the metadata; an index of the keys
    that safetensors lists (the stored ones) still gives both names, one tensor."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    shard = folder / "model-00001-of-00001.safetensors"
    cli.run("init", "tinylm", "--save", shard)
    with safe_open(str(shard), framework="pt") as f:
        stored = list(f.keys())
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": dict.fromkeys(stored, shard.name)}))
    ref = seeded(R.REFERENCES["tinylm"])
    assert set(rows(cli, folder)) == set(ref.state_dict())
    assert [sorted(g["paths"]) for g in cli.json("shared", index)["groups"]] == [sorted(g) for g in tie_groups(ref)]


# --- torch.distributed.checkpoint ---------------------------------------------------------------


def test_dcp_folder_as_its_metadata_says(cli: Cli, tmp_path: Path) -> None:
    sd: dict[str, Any] = every_dtype() | mlp_state()
    sd["step"] = 7  # not a tensor: left out of the table
    folder = tmp_path / "dcp"
    dcp_save(folder, sd)
    md = FileSystemReader(str(folder)).read_metadata()  # the reference reader, on our own file
    tensors = {k: v for k, v in md.state_dict_metadata.items() if hasattr(v, "size")}
    doc = cli.json("params", folder)
    assert [r["name"] for r in doc["parameters"]] == list(tensors)
    for r in doc["parameters"]:
        meta = tensors[r["name"]]
        assert r["shape"] == list(meta.size) and r["dtype"] == torch_name(meta.properties.dtype)
    values = {e["key"]: e["values"] for e in cli.json("state-dict", folder, "--values")["entries"]}
    for key, t in sd.items():
        if isinstance(t, torch.Tensor):
            assert values[key] == (torch.view_as_real(t) if t.is_complex() else t).tolist(), key
    assert cli.run("validate", folder).stdout == "ok\n"
    for data in folder.glob("*.distcp"):  # metadata intact, data not a torch.save record
        data.write_bytes(bytes(data.stat().st_size))
    err = cli.run("state-dict", folder, "--key", "2.bias", code=3).stderr
    assert err.startswith(f"{folder}: error: cannot read the values of '2.bias'") and len(err.splitlines()) == 1


# --- torch.save ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_torch_save_files_as_torch_load_reports(cli: Cli, tmp_path: Path, suffix: str) -> None:
    ref = seeded(R.REFERENCES["tied"])
    sd = ref.state_dict()
    path = tmp_path / f"tied{suffix}"
    torch.save(sd, path)
    loaded = torch.load(path, weights_only=True)
    got = rows(cli, path)
    assert list(got) == list(loaded)
    for key, t in loaded.items():
        assert (got[key]["shape"], got[key]["dtype"], got[key]["numel"]) == (list(t.shape), torch_name(t.dtype), t.numel())
    by_storage: dict[int, list[str]] = {}
    for key, t in loaded.items():
        by_storage.setdefault(t.untyped_storage().data_ptr(), []).append(key)
    groups = cli.json("shared", path)["groups"]
    assert sorted(g["paths"] for g in groups) == sorted(g for g in by_storage.values() if len(g) > 1)
    assert all(g["cause"] == "storage" for g in groups)
    assert cli.run("state-dict", path, "--key", "4.weight").stdout.strip() == str(loaded["4.weight"])


def test_torch_save_nested_and_legacy_format(cli: Cli, tmp_path: Path) -> None:
    sd = mlp_state()
    nested = tmp_path / "nested.pt"
    torch.save({"state_dict": sd, "epoch": 3}, nested)
    legacy = tmp_path / "legacy.pt"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    for path in (nested, legacy):
        assert list(rows(cli, path)) == list(sd)
        assert cli.run("state-dict", path, "--key", "0.weight").stdout.strip() == str(sd["0.weight"])


# --- --weights in every form --------------------------------------------------------------------


def test_weights_accepts_every_form(cli: Cli, tmp_path: Path) -> None:
    sd = mlp_state(seed=11)
    forms = {
        "index": write_sharded(tmp_path / "sharded", sd, shards=2),
        "folder": tmp_path / "sharded",
        "pt": tmp_path / "w.pt",
        "bin": tmp_path / "pytorch_model.bin",
        "dcp": tmp_path / "dcp",
    }
    torch.save(sd, forms["pt"])
    torch.save(sd, forms["bin"])
    dcp_save(forms["dcp"], sd)
    for form, path in forms.items():
        values = {e["key"]: e["values"] for e in cli.json("state-dict", "mlp", "--weights", path, "--values")["entries"]}
        assert values == {k: v.tolist() for k, v in sd.items()}, form


def test_checkpoint_is_not_a_model_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(mlp_state(), str(path))
    err = cli.run("forward", path, code=2).stderr
    assert "is a checkpoint, not a model file" in err and f"--weights {path}" in err
    assert "--dtype does not apply to a checkpoint" in cli.run("params", path, "--dtype", "float16", code=2).stderr
    assert "--repr" in cli.run("tree", path, "--repr", code=2).stderr
    assert "did you mean '0.bias'" in cli.run("state-dict", path, "--key", "0.bais", code=2).stderr


@pytest.mark.slow
def test_headers_only_never_import_torch(tmp_path: Path) -> None:
    """params, tree, shared and validate on safetensors and an index: torch is never imported."""
    index = write_sharded(tmp_path / "ckpt", mlp_state(), shards=2)
    single = index.parent / "model-00001-of-00002.safetensors"
    for args in (["params", "--json", str(index)], ["tree", str(index.parent)], ["shared", str(single)], ["validate", str(index)]):
        state, code, err = probe(*args)
        assert (state, code) == ("NO-TORCH", "0"), (args, err)


# --- hostile files ------------------------------------------------------------------------------

_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # records only while a test sets _OPENED


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Case]]:
    root = tmp_path_factory.mktemp("hostile")
    cases = make_corpus(root, marker=root / "pwned")
    assert tuple(c.name for c in cases) == NAMES
    return root, {c.name: c for c in cases}


@pytest.fixture
def opened() -> Iterator[list[str]]:
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def check_one_line(case: Case, stderr: str) -> None:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{case.file}: error: "), lines[0]
    for word in case.words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in stderr


@pytest.mark.parametrize("name", NAMES)
def test_hostile_checkpoint(cli: Cli, corpus: tuple[Path, dict[str, Case]], name: str, opened: list[str]) -> None:
    """One line naming the file (and the tensor or key), exit 3, no file opened outside the case's
    own folder (the corpus leaves bait beside it), no code run; as MODEL, for validate and --weights."""
    root, cases = corpus
    case = cases[name]
    for args in (["params", case.model], ["validate", case.model], ["params", "mlp", "--weights", case.model]):
        check_one_line(case, cli.run(*args, code=3).stderr)
    mine = os.path.realpath(root / name)
    for path in opened:
        real = os.path.realpath(path)
        if real.startswith(os.path.realpath(root)):
            assert real.startswith(mine + os.sep), f"{name} opened {path}"
        assert real != "/etc/passwd"
    assert not (root / "pwned").exists()


SLOW_CASES = [
    "length_2_63",
    "length_over_cap",
    "deep_json",
    "index_parent",
    "index_link_loop",
    "folder_link_loop",
    "pt_needs_code",
    "dcp_metadata_code",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CASES)
def test_hostile_checkpoint_in_a_process(corpus: tuple[Path, dict[str, Case]], name: str) -> None:
    """A real process (the console entry point), with its address space capped at 1 GiB where torch
    is not needed: a lying length or a deep header cannot make it allocate or recurse."""
    root, cases = corpus
    case = cases[name]
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); " if case.torch_free else ""
    code = f"{limit}import sys; sys.argv = ['netinspect', 'params', sys.argv[1]]; from netinspect.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code, case.model], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 3, r.stderr
    check_one_line(case, r.stderr)
    assert not (root / "pwned").exists()


def test_json_errors_for_a_hostile_file(cli: Cli, corpus: tuple[Path, dict[str, Case]]) -> None:
    case = corpus[1]["unknown_dtype"]
    err = cli.run("params", case.model, "--json", code=3).stderr
    doc = one_json_document(err)
    assert doc["error"]["file"] == case.file and "unknown dtype 'F33'" in doc["error"]["message"]
