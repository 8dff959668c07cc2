"""Every built-in config against its plain-PyTorch reference (tests/reference_models.py).

Structure (``print(model)``, ``state_dict()`` keys/shapes/dtypes/order, ``named_parameters``, ties,
counts) for all configs, the big ones on ``--device meta`` only; bit-identical values at seed 0 and
seed 7 for the small ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest
import reference_models as R
import torch
from conftest import ROOT, Cli, assert_state_equal, by_path_numel, seeded, tie_groups, unique_numel
from torch import nn

from netinspect.session import BuildOptions, make

CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
BIG = sorted(R.BIG)
# tens of millions of parameters: structure on meta; values of alexnet and resnet50 at seed 0 (vit-b-16's
# file runs torchvision's MLP init as rules after the build, so only its structure equals torchvision's)
MEDIUM = ["alexnet", "vgg11", "resnet50", "vit-b-16"]
SMALL = [c for c in CONFIGS if c not in R.BIG and c not in MEDIUM]


def _d2l_init(net: nn.Module) -> None:
    """configs/d2l-init.yaml: net[0].apply(xavier); net[2].apply(init_42)."""
    nn.init.xavier_uniform_(net[0].weight)
    nn.init.constant_(net[2].weight, 42)


def _d2l_custom_init(net: nn.Module) -> None:
    """configs/d2l-custom-init.yaml: net.apply(my_init)."""
    for m in net.modules():
        if type(m) is nn.Linear:
            nn.init.uniform_(m.weight, -10, 10)
            m.weight.data *= m.weight.data.abs() >= 5


# The init rules a model file applies on top of the construction (the references return fresh modules).
POST_INIT: dict[str, Callable[[nn.Module], None]] = {"d2l-init": _d2l_init, "d2l-custom-init": _d2l_custom_init}


@contextlib.contextmanager
def meta_normal_skipped() -> Iterator[None]:
    """Skip ``nn.init.normal_`` while a big reference is built on meta: the values do not exist there,
    and the first meta ``normal_`` (Embedding's init) imports torch._dynamo, seconds on this machine."""
    saved = nn.init.normal_
    nn.init.normal_ = lambda tensor, *args, **kwargs: tensor  # type: ignore[assignment]
    try:
        yield
    finally:
        nn.init.normal_ = saved


@cache
def reference(name: str, seed: int = 0, meta: bool = False) -> nn.Module:
    """The plain-torch module, with the config's own init rules applied (cached; never mutate)."""
    if name in R.BIG:
        with meta_normal_skipped():
            return R.REFERENCES[name]()  # these builders construct on meta themselves
    if meta:
        with torch.device("meta"):
            return R.REFERENCES[name]()
    torch.manual_seed(seed)
    net = R.REFERENCES[name]()
    if name in POST_INIT:
        with torch.no_grad():
            POST_INIT[name](net)
    return net


@cache
def built(name: str, device: str = "cpu", seed: int | None = None) -> nn.Module:
    return make(name, BuildOptions(device=device, seed=seed)).built.module


def device_for(name: str) -> str:
    return "meta" if name in R.BIG else "cpu"


def structure_pair(name: str) -> tuple[nn.Module, nn.Module]:
    """(netinspect's module, the reference) for structure checks: meta for big and medium configs."""
    if name in R.BIG or name in MEDIUM:
        return built(name, "meta"), reference(name, meta=True)
    return built(name), reference(name)


def test_every_config_has_a_reference() -> None:
    assert CONFIGS, "no configs found"
    assert set(CONFIGS) == set(R.REFERENCES)


def test_configs_command_lists_every_config(cli: Cli) -> None:
    names = [c["name"] for c in cli.json("configs")["configs"]]
    assert sorted(names) == CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_print_model_is_identical(cli: Cli, name: str) -> None:
    mine, ref = structure_pair(name)
    assert str(mine) == str(ref)
    if name not in R.BIG:
        assert cli.run("tree", name, "--repr", "--device", "meta").stdout == str(ref) + "\n"


@pytest.mark.parametrize("name", CONFIGS)
def test_state_dict_keys_shapes_dtypes_order(name: str) -> None:
    mine, ref = structure_pair(name)
    got = [(k, tuple(v.shape), v.dtype) for k, v in mine.state_dict(keep_vars=True).items()]
    expected = [(k, tuple(v.shape), v.dtype) for k, v in ref.state_dict(keep_vars=True).items()]
    assert got == expected
    kinds = [isinstance(v, nn.Parameter) for v in mine.state_dict(keep_vars=True).values()]
    assert kinds == [isinstance(v, nn.Parameter) for v in ref.state_dict(keep_vars=True).values()]
    assert [n for n, _ in mine.named_buffers()] == [n for n, _ in ref.named_buffers()]
    if name in R.DTYPES:
        assert {p.dtype for p in mine.parameters()} == {R.DTYPES[name]}


def module_class(m: nn.Module) -> object:
    """A torch.nn module's class; a graph module's (compiled from a written forward) and a
    hand-written reference class's name, with the classes of their direct children's kinds."""
    if type(m).__module__.startswith("torch.nn"):
        return type(m)
    return ("class", type(m).__name__)


@pytest.mark.parametrize("name", CONFIGS)
def test_named_parameters_and_modules(name: str) -> None:
    mine, ref = structure_pair(name)
    assert [n for n, _ in mine.named_parameters(remove_duplicate=False)] == [n for n, _ in ref.named_parameters(remove_duplicate=False)]
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [(p, module_class(m)) for p, m in mine.named_modules(remove_duplicate=False)] == [
        (p, module_class(m)) for p, m in ref.named_modules(remove_duplicate=False)
    ]
    assert [p.requires_grad for p in mine.parameters()] == [p.requires_grad for p in ref.parameters()]


@pytest.mark.parametrize("name", CONFIGS)
def test_tie_groups_are_identical(name: str) -> None:
    mine, ref = structure_pair(name)
    assert tie_groups(mine) == tie_groups(ref)

    # module reuse too: the same module object at several paths
    def module_groups(m: nn.Module) -> list[list[str]]:
        groups: dict[int, list[str]] = {}
        for path, sub in m.named_modules(remove_duplicate=False):
            groups.setdefault(id(sub), []).append(path)
        return [g for g in groups.values() if len(g) > 1]

    assert module_groups(mine) == module_groups(ref)


@pytest.mark.parametrize("name", CONFIGS)
def test_param_counts_from_params_json(cli: Cli, name: str) -> None:
    ref = reference(name, meta=name in MEDIUM)
    device = "meta" if name in R.BIG or name in MEDIUM else "cpu"
    doc = cli.json("params", name, "--device", device)
    totals = doc["totals"]
    assert totals["unique"] == unique_numel(ref)
    assert totals["by_path"] == by_path_numel(ref)
    uniq = {id(p): p for p in ref.parameters()}
    assert totals["trainable"] == sum(p.numel() for p in uniq.values() if p.requires_grad)
    assert totals["bytes"] == sum(p.numel() * p.element_size() for p in uniq.values())
    assert [r["name"] for r in doc["parameters"]] == [n for n, _ in ref.named_parameters(remove_duplicate=False)]
    assert [r["numel"] for r in doc["parameters"]] == [p.numel() for _, p in ref.named_parameters(remove_duplicate=False)]
    # the published figures agree with the reference itself
    if name in R.EXPECTED_UNIQUE:
        assert unique_numel(ref) == R.EXPECTED_UNIQUE[name]
    if name in R.EXPECTED_BY_PATH:
        assert by_path_numel(ref) == R.EXPECTED_BY_PATH[name]
    if name in R.EXPECTED_STATE_DICT_LEN:
        assert len(ref.state_dict()) == R.EXPECTED_STATE_DICT_LEN[name]
    if name in R.EXPECTED_NAMED_PARAMETERS_LEN:
        assert len(list(ref.named_parameters())) == R.EXPECTED_NAMED_PARAMETERS_LEN[name]


@pytest.mark.parametrize("name", CONFIGS)
def test_shared_json_matches_the_reference(cli: Cli, name: str) -> None:
    ref = reference(name, meta=name in MEDIUM)
    device = "meta" if name in R.BIG or name in MEDIUM else "cpu"
    doc = cli.json("shared", name, "--device", device)
    assert [g["paths"] for g in doc["groups"]] == tie_groups(ref)
    assert doc["totals"]["unique"] == unique_numel(ref)
    assert doc["totals"]["by_path"] == by_path_numel(ref)
    params = dict(ref.named_parameters(remove_duplicate=False))
    for g in doc["groups"]:
        p = params[g["paths"][0]]
        assert g["shape"] == list(p.shape) and g["numel"] == p.numel()


@pytest.mark.parametrize("name", CONFIGS)
def test_tree_json_paths_and_totals(cli: Cli, name: str) -> None:
    ref = reference(name, meta=name in MEDIUM)
    device = "meta" if name in R.BIG or name in MEDIUM else "cpu"
    doc = cli.json("tree", name, "--device", device)
    nodes: list[dict] = []

    def walk(node: dict) -> None:
        nodes.append(node)
        for child in node["children"]:
            walk(child)

    walk(doc["root"])
    modules = list(ref.named_modules(remove_duplicate=False))
    assert [n["path"] for n in nodes] == [p for p, _ in modules]
    assert [n["type"] for n in nodes] == [type(m).__name__ for _, m in modules]
    for node, (_, m) in zip(nodes, modules, strict=True):
        assert node["params_total"] == unique_numel(m), node["path"]
        own = {id(p): p.numel() for p in m.parameters(recurse=False)}
        assert node["params_own"] == sum(own.values()), node["path"]


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("name", SMALL)
def test_values_are_bit_identical(name: str, seed: int) -> None:
    mine = built(name, "cpu", seed)
    ref = reference(name, seed)
    assert_state_equal(mine.state_dict(), ref.state_dict())
    # ties are real ties (one object), not copies
    assert tie_groups(mine) == tie_groups(ref)


@pytest.mark.parametrize("name", ["alexnet", "resnet50"])
def test_values_are_bit_identical_medium(name: str) -> None:
    mine = make(name).built.module
    ref = seeded(R.REFERENCES[name], 0)
    assert_state_equal(mine.state_dict(), ref.state_dict())
    assert str(mine) == str(ref)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "resnet18" else n for n in SMALL])  # 11.7M values
def test_state_dict_values_json_equal_torch(cli: Cli, name: str) -> None:
    ref = reference(name, 0)
    doc = cli.json("state-dict", name, "--values")
    assert [e["key"] for e in doc["entries"]] == list(ref.state_dict())
    for entry, (key, value) in zip(doc["entries"], ref.state_dict().items(), strict=True):
        assert entry["values"] == value.tolist(), key
        assert entry["dtype"] == str(value.dtype).removeprefix("torch.")


@pytest.mark.parametrize("name", SMALL)
def test_forward_output_equals_torch(cli: Cli, name: str) -> None:
    """The forward output for the file's input: the reference at seed 0, then the input drawn as
    plain code draws it (torch.rand, or torch.randint below the smallest vocabulary)."""
    from netinspect.spec import parse_model, read_model_text

    spec = parse_model(*read_model_text(str(ROOT / "configs" / f"{name}.yaml")))
    torch.manual_seed(0)
    if name == "d2l-lazy":  # its cells draw X after the (random-free) lazy construction, then call net(X)
        x = [torch.rand(2, 20)]
        torch.manual_seed(0)
    net = R.REFERENCES[name]()
    if name in POST_INIT:
        with torch.no_grad():
            POST_INIT[name](net)
    if name != "d2l-lazy":
        x = []
        for s in spec.inputs:
            if s.dtype in (None, "float32"):
                x.append(torch.rand(s.shape))
            else:
                high = s.high or min(m.num_embeddings for m in net.modules() if isinstance(m, nn.Embedding))
                x.append(torch.randint(0, high, s.shape, dtype=torch.int64))
    expected = net(*x)
    doc = cli.json("forward", name, "--values")
    first = expected[0] if isinstance(expected, tuple) else expected
    got = doc["output"][0] if isinstance(expected, tuple) else doc["output"]
    assert doc["output_shape"][0 if isinstance(expected, tuple) else slice(None)] == list(first.shape)
    assert got == first.tolist()


@pytest.mark.parametrize("name", BIG)
def test_big_configs_only_on_meta(name: str) -> None:
    mine = built(name, "meta")
    assert all(t.is_meta for t in mine.state_dict(keep_vars=True).values())
    assert unique_numel(mine) == R.EXPECTED_UNIQUE[name]


def test_config_files_are_found_by_path_too(cli: Cli, tmp_path: Path) -> None:
    path = ROOT / "configs" / "mlp.yaml"
    assert cli.run("tree", path, "--repr").stdout == cli.run("tree", "mlp", "--repr").stdout
