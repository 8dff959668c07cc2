"""The spec layer on its own: YAML text → declarations, problems located, and never a torch import.

These tests call ``netinspect.spec`` directly (no CLI, no build). What a declaration must build is
checked against plain torch elsewhere (test_build, test_configs); here the subject is the parse.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netinspect.errors import Pos, SpecError
from netinspect.spec import Leaf, ModelSpec, PartialSpecError, Ref, Seq, count_modules, parse_model, parse_rules_file, walk
from netinspect.spec.ir import height
from netinspect.spec.nodes import KINDS

ROOT = Path(__file__).resolve().parents[1]


def parse(text: str) -> ModelSpec:
    return parse_model(text, "m.yaml")


def problems(text: str) -> list[tuple[int | None, int | None, str]]:
    """(line, column, message) of every problem the file has."""
    with pytest.raises(SpecError) as info:
        parse(text)
    return [(p.pos.line if p.pos else None, p.pos.col if p.pos else None, p.message) for p in info.value.problems]


def test_list_is_a_sequential_of_calls() -> None:
    spec = parse("netinspect: 1\nmodel: ['Linear(4, 8)', ReLU, 'Dropout(p=0.5)']\n")
    assert isinstance(spec.model, Seq)
    assert [name for name, _ in spec.model.children()] == ["0", "1", "2"]
    leaves = [c for _, c in spec.model.children()]
    assert all(isinstance(c, Leaf) for c in leaves)
    assert [(c.type_name, c.args, c.kwargs) for c in leaves if isinstance(c, Leaf)] == [
        ("Linear", (4, 8), ()),
        ("ReLU", (), ()),
        ("Dropout", (), (("p", 0.5),)),
    ]
    assert spec.module_count == 4
    assert spec.name == "m" and spec.seed is None and spec.dtype is None


def test_named_children_blocks_and_expressions() -> None:
    spec = parse(
        "netinspect: 1\n"
        "vars: {hidden: 8}\n"
        "blocks:\n"
        "  mlp:\n"
        "    required: [d_out]\n"
        "    params: {d_in: 4}\n"
        "    body: ['Linear(d_in, hidden * 2)', ReLU, 'Linear(hidden * 2, d_out)']\n"
        "model:\n"
        "  sequential:\n"
        "    a: mlp(3)\n"
        "    b: {use: mlp, with: {d_out: '${hidden // 2}', d_in: 3}}\n"
    )
    a, b = (c for _, c in spec.model.children())
    assert isinstance(a, Seq) and isinstance(b, Seq)
    first = a.children()[0][1]
    assert isinstance(first, Leaf) and first.args == (4, 16)
    last = b.children()[2][1]
    assert isinstance(last, Leaf) and last.args == (16, 4)
    assert b.children()[0][1].args == (3, 16)  # type: ignore[union-attr]
    assert spec.names == ("d_in", "d_out", "hidden")


def test_repeat_shares_one_declaration_and_names_from_the_template() -> None:
    spec = parse(
        "netinspect: 1\nblocks:\n  cell: ['Linear(4, 4)', ReLU]\nmodel:\n  - {use: cell, repeat: 3, name: 'layer{i}'}\n  - Linear(4, 1)\n"
    )
    names = [n for n, _ in spec.model.children()]
    assert names == ["layer0", "layer1", "layer2", "3"]
    cells = [c for _, c in spec.model.children()[:3]]
    assert cells[0] is cells[1] is cells[2]  # expanded once
    assert len(list(walk(spec.model))) == 1 + 1 + 2 + 1  # distinct objects: root, cell, its 2 leaves, the head
    assert count_modules(spec.model, {}) == 1 + 3 * 3 + 1
    assert height(spec.model, {}) == 3


def test_shared_ref_tie_and_rules() -> None:
    spec = parse(
        "netinspect: 1\n"
        "shared: {enc: 'Linear(8, 8)'}\n"
        "model:\n"
        "  sequential:\n"
        "    embed: Embedding(16, 8)\n"
        "    a: {ref: enc}\n"
        "    b: {ref: enc}\n"
        "    head: {type: Linear, args: [8, 16], kwargs: {bias: false}, frozen: true, init: [{weight: zeros}]}\n"
        "init:\n"
        "  - {target: 'a', types: [Linear], weight: 'normal(std=0.02)', bias: zeros}\n"
        "tie:\n"
        "  - {param: head.weight, to: embed.weight}\n"
    )
    children = dict(spec.model.children())
    assert isinstance(children["a"], Ref) and children["a"].shared == "enc"
    assert not children["a"].owns_module()
    head = children["head"]
    assert isinstance(head, Leaf) and head.frozen and head.kwargs == (("bias", False),)
    assert [r.params[0][0] for r in head.rules] == ["weight"]
    (rule,) = spec.init
    assert (rule.target, rule.types) == ("a", ("Linear",))
    assert [(glob, [s.text for s in steps]) for glob, steps in rule.params] == [("weight", ["normal(std=0.02)"]), ("bias", ["zeros"])]
    assert rule.types_pos == Pos("m.yaml", 10, 26)
    (tie,) = spec.tie
    assert (tie.param, tie.to, tie.pos.line) == ("head.weight", "embed.weight", 12)
    assert [name for name, _ in spec.shared] == ["enc"]
    assert spec.module_count == 1 + 1 + 1 + 1  # root, embed, head, and enc once


def test_with_mods_adds_to_a_shared_expansion_without_changing_it() -> None:
    spec = parse("netinspect: 1\nblocks:\n  b: Linear(2, 2)\nmodel:\n  - b\n  - {use: b, frozen: true}\n")
    plain, frozen = (c for _, c in spec.model.children())
    assert isinstance(plain, Leaf) and isinstance(frozen, Leaf)
    assert not plain.frozen and frozen.frozen
    assert plain.with_mods(False, ()) is plain


def test_inputs_dtype_seed() -> None:
    spec = parse("netinspect: 1\ndtype: bf16\nseed: 7\ninput: [{shape: [2, 16], dtype: int64, high: 9}, [2, 3]]\nmodel: [ReLU]\n")
    assert spec.dtype == "bfloat16" and spec.seed == 7
    assert [(i.shape, i.dtype, i.high) for i in spec.inputs] == [((2, 16), "int64", 9), ((2, 3), None, None)]


def test_every_problem_of_a_file_is_located() -> None:
    text = (
        "netinspect: 1\n"
        "modle: 3\n"  # 2: unknown top-level key (a typo of model: no 'missing model' as well)
        "blocks:\n"
        "  b: [Linear(2, 2)]\n"
        "x: 1\n"
    )
    got = problems(text)
    assert (2, 1, "unknown top-level key 'modle'") in got
    assert (5, 1, "unknown top-level key 'x'") in got
    assert all("missing 'model:'" not in m for _, _, m in got)


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ("model: [Linear(4, 8), ReLU]\n", (2, 9), "YAML split the call 'Linear(4, 8)' at its commas"),
        ("model: [Sequential()]\n", (2, 9), "'Sequential' is a container and is not written as a call"),
        ("model:\n  - {use: nope}\n", (3, 11), "undefined block 'nope'"),
        ("model:\n  - {ref: enc}\n", (3, 11), "undefined shared module 'enc'"),
        (
            "model:\n  - {type: Linear, use: x}\n",
            (3, 5),
            "a module mapping has exactly one of type, sequential, use, ref, modules; found type, use",
        ),
        ("model:\n  - {type: Linear, wat: 1}\n", (3, 20), "unknown key for a 'type' node 'wat'"),
        ("model:\n  - {sequential: [ReLU], repeat: 2, name: a}\n", (3, 43), "name 'a' with repeat 2 needs '{i}'"),
        ("model:\n  - 'Linear(4, 2 ** 99)'\n", (3, 16), "result of '**' too large (limit 2**63)"),
        ("model:\n  sequential:\n    a.b: ReLU\n", (4, 5), "child name 'a.b' contains '.'"),
        ("model:\n  - {ReLU: 1}\n", (3, 5), "a module mapping needs one of the keys type, sequential, use, ref, modules"),
    ],
)
def test_problem_positions(body: str, where: tuple[int, int], message: str) -> None:
    got = problems("netinspect: 1\n" + body)
    assert any((line, col) == where and text.startswith(message) for line, col, text in got), got


def test_block_cycles_and_depth() -> None:
    got = problems("netinspect: 1\nblocks:\n  a: [b]\n  b: [a]\nmodel: [a]\n")
    assert any("block 'a' uses itself: a -> b -> a" in m for _, _, m in got)
    deep = "netinspect: 1\nmodel: " + "[" * 205 + "ReLU" + "]" * 205 + "\n"
    assert any("nested deeper than 200 levels" in m for _, _, m in problems(deep))


def test_partial_error_carries_the_calls_that_parsed() -> None:
    with pytest.raises(PartialSpecError) as info:
        parse("netinspect: 1\nmodel:\n  - Linaer(4, 8)\n  - {use: nope}\n")
    assert [leaf.type_name for leaf in info.value.leaves] == ["Linaer"]  # its class is checked later, with torch


def test_rules_file() -> None:
    (rule,) = parse_rules_file("- {target: '0', weight: xavier}\n", "r.yaml")
    assert rule.target == "0" and rule.params[0][1][0].name == "xavier_uniform"
    with pytest.raises(SpecError, match="unknown init scheme 'xavierr'"):
        parse_rules_file("- {weight: xavierr}\n", "r.yaml")


def test_node_kinds_are_one_table() -> None:
    assert set(KINDS) == {"type", "sequential", "use", "ref", "modules"}


@pytest.mark.slow
def test_the_spec_layer_never_imports_torch() -> None:
    """Every built-in config and every hostile model file parses (or fails) without importing torch."""
    code = (
        "import sys, pathlib\n"
        "from netinspect.errors import SpecError\n"
        "from netinspect.spec import parse_model, read_model_text\n"
        "for folder in ('configs', 'tests/hostile'):\n"
        "    for path in sorted(pathlib.Path(folder).glob('*.yaml')):\n"
        "        try:\n"
        "            parse_model(*read_model_text(str(path)))\n"
        "        except SpecError:\n"
        "            pass\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded[:5]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
