"""Property-based tests: random valid model files against plain torch, and mutation fuzzing.

(a) ``ModelGen`` draws a random valid model file (nested lists, ``sequential:`` lists and
    mappings, ``type:`` mappings, call strings with expressions over ``vars``, blocks with
    parameters used by call, by ``use:``/``with:`` and with ``repeat`` and name templates,
    ``shared:`` modules and ``ref``) together with the plain PyTorch code that builds the
    same module. netinspect's module must have the same ``str(model)``, ``state_dict``
    keys and shapes, ``named_parameters(remove_duplicate=False)`` names and sharing, and
    bit-identical values at the same seed.
(b) Mutation fuzzing of the built-in configs (delete, duplicate and swap lines and tokens,
    insert random characters): whatever the file becomes, netinspect exits 0, 1, 3 or 4,
    never shows a traceback or an internal error, and an invalid file is reported at a
    ``FILE:LINE:COL``. ``bench/fuzz_long.py`` runs the same mutations for 10,000+ cases.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

from netinspect.build import build
from netinspect.cli import app
from netinspect.spec import parse_model

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"

# ================================================================================================
# (a) random valid model files and their plain-torch twins
# ================================================================================================

Builder = Callable[[dict[str, nn.Module]], nn.Module]


@dataclass
class Block:
    name: str
    required: list[str]
    params: dict[str, int]
    same_dim: bool  # d_out == d_in for every binding (usable with repeat)
    make: Callable[[dict[str, int]], nn.Module]


@dataclass
class ModelGen:
    """Draws a model file and the equivalent plain-torch construction, node by node."""

    draw: Any
    vars: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    block_yaml: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, tuple[int, Callable[[], nn.Module]]] = field(default_factory=dict)
    shared_yaml: dict[str, Any] = field(default_factory=dict)
    counter: int = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- sizes and expressions -------------------------------------------------------------
    def size(self, n: int) -> str:
        """The integer ``n`` written as an expression: a literal, a var, or arithmetic on a var."""
        how = self.draw(st.sampled_from(["lit", "lit", "var", "expr"]))
        if how == "lit" or not self.vars:
            return str(n)
        name = self.draw(st.sampled_from(sorted(self.vars)))
        v = self.vars[name]
        if how == "var" and v == n:
            return name
        if v == n:
            return self.draw(st.sampled_from([f"{name} * 1", f"({name} + 0)", f"{name} // 1", f"{name} * 2 - {name}"]))
        diff = n - v
        return f"{name} + {diff}" if diff >= 0 else f"{name} - {-diff}"

    def dim(self) -> int:
        return int(self.draw(st.integers(1, 6)))

    # -- leaves -------------------------------------------------------------------------------
    def leaf(self, d: int) -> tuple[Any, int, Builder]:
        kind = self.draw(st.sampled_from(["Linear", "Linear", "Linear", "act", "act", "Dropout", "LayerNorm", "BatchNorm1d", "Identity"]))
        prefix = self.draw(st.sampled_from(["", "", "", "nn.", "torch.nn."]))
        if kind == "Linear":
            out = self.dim()
            bias = self.draw(st.booleans())
            form = self.draw(st.sampled_from(["call", "kw", "type"]))
            if form == "type":
                node: Any = {"type": f"{prefix}Linear", "args": [d, out]}
                if not bias:
                    node["kwargs"] = {"bias": False}
            elif form == "kw":
                node = f"{prefix}Linear(in_features={self.size(d)}, out_features={self.size(out)}" + ("" if bias else ", bias=False") + ")"
            else:
                node = f"{prefix}Linear({self.size(d)}, {self.size(out)}" + ("" if bias else ", bias=False") + ")"
            return node, out, lambda ctx: nn.Linear(d, out, bias=bias)
        if kind == "act":
            name = self.draw(st.sampled_from(["ReLU", "Tanh", "Sigmoid", "GELU", "SiLU"]))
            cls = getattr(nn, name)
            node = self.draw(st.sampled_from([f"{prefix}{name}", f"{prefix}{name}()", {"type": name}]))
            return node, d, lambda ctx: cls()
        if kind == "Dropout":
            p = self.draw(st.sampled_from([0.0, 0.1, 0.25, 0.5]))
            return f"Dropout(p={p})", d, lambda ctx: nn.Dropout(p=p)
        if kind == "LayerNorm":
            return f"{prefix}LayerNorm({self.size(d)})", d, lambda ctx: nn.LayerNorm(d)
        if kind == "BatchNorm1d":
            return {"type": "BatchNorm1d", "args": [d]}, d, lambda ctx: nn.BatchNorm1d(d)
        return "Identity", d, lambda ctx: nn.Identity()

    # -- blocks, shared ------------------------------------------------------------------------
    def block(self) -> Block:
        """A block with parameters; reuse an existing one or define a new one."""
        if self.blocks and self.draw(st.booleans()):
            return self.blocks[self.draw(st.sampled_from(sorted(self.blocks)))]
        name = self.fresh("blk")
        pattern = self.draw(st.sampled_from(["mlp", "square", "norm"]))
        if pattern == "mlp":
            params = {"d_in": self.dim(), "hidden": self.dim()}
            body: Any = ["Linear(d_in, hidden)", "ReLU", "Linear(hidden, d_out)"]

            def make(b: dict[str, int]) -> nn.Module:
                return nn.Sequential(nn.Linear(b["d_in"], b["hidden"]), nn.ReLU(), nn.Linear(b["hidden"], b["d_out"]))

            block = Block(name, ["d_out"], params, False, make)
        elif pattern == "square":
            params = {"d": self.dim()}
            body = {"sequential": {"fc": "Linear(d, d)", "act": "Tanh"}}

            def make(b: dict[str, int]) -> nn.Module:
                s = nn.Sequential()
                s.add_module("fc", nn.Linear(b["d"], b["d"]))
                s.add_module("act", nn.Tanh())
                return s

            block = Block(name, [], params, True, make)
        else:
            params = {"d": self.dim()}
            body = ["LayerNorm(d)", "Linear(d, d * 2)", "GELU", "Linear(d * 2, d)"]

            def make(b: dict[str, int]) -> nn.Module:
                return nn.Sequential(nn.LayerNorm(b["d"]), nn.Linear(b["d"], b["d"] * 2), nn.GELU(), nn.Linear(b["d"] * 2, b["d"]))

            block = Block(name, [], params, True, make)
        self.blocks[name] = block
        self.block_yaml[name] = {"params": params, **({"required": block.required} if block.required else {}), "body": body}
        return block

    def use_block(self, d: int) -> tuple[Any, int, Builder]:
        block = self.block()
        if block.same_dim:
            binding = {"d": d}
            out = d
        else:
            binding = {"d_in": d, "hidden": self.dim(), "d_out": self.dim()}
            out = binding["d_out"]
        full = {**block.params, **binding}
        form = self.draw(st.sampled_from(["use", "call_kw", "call_pos"]))
        if form == "use":
            node: Any = {"use": block.name, "with": {k: v for k, v in binding.items()}}
        elif form == "call_kw":
            node = f"{block.name}(" + ", ".join(f"{k}={self.size(v)}" for k, v in binding.items()) + ")"
        else:
            order = block.required + list(block.params)
            node = f"{block.name}(" + ", ".join(self.size(full[k]) for k in order) + ")"
        return node, out, lambda ctx: block.make(full)

    def ref(self, d: int) -> tuple[Any, int, Builder]:
        same = [n for n, (k, _) in self.shared.items() if k == d]
        if same and self.draw(st.booleans()):
            name = self.draw(st.sampled_from(same))
        else:
            name = self.fresh("shared")
            if self.draw(st.booleans()):
                self.shared_yaml[name] = f"Linear({d}, {d})"
                self.shared[name] = (d, lambda: nn.Linear(d, d))
            else:
                self.shared_yaml[name] = [f"Linear({d}, {d})", "ReLU"]
                self.shared[name] = (d, lambda: nn.Sequential(nn.Linear(d, d), nn.ReLU()))
        return {"ref": name}, d, lambda ctx: ctx[name]

    # -- containers ------------------------------------------------------------------------------
    def node(self, d: int, depth: int, container: bool = False) -> tuple[Any, int, Builder]:
        choices = [] if container else ["leaf", "leaf", "block", "ref"]
        if depth > 0 or container:
            choices += ["list", "list", "seq_list", "seq_map"]
        kind = self.draw(st.sampled_from(choices))
        if kind == "leaf":
            return self.leaf(d)
        if kind == "block":
            return self.use_block(d)
        if kind == "ref":
            return self.ref(d)
        if kind == "seq_map":
            n = int(self.draw(st.integers(1, 3)))
            mapping: dict[str, Any] = {}
            parts: list[tuple[str, Builder]] = []
            for _ in range(n):
                child, d, make = self.node(d, depth - 1)
                cname = self.fresh("c")
                mapping[cname] = child
                parts.append((cname, make))

            def make_named(ctx: dict[str, nn.Module]) -> nn.Module:
                s = nn.Sequential()
                for cname, make in parts:
                    s.add_module(cname, make(ctx))
                return s

            return {"sequential": mapping}, d, make_named
        items, d, make_items = self.items(d, depth)
        node: Any = items if kind == "list" else {"sequential": items}
        return node, d, make_items

    def items(self, d: int, depth: int) -> tuple[list[Any], int, Builder]:
        """A list of children; some named, some repeated (with a name template or auto-numbered)."""
        n = int(self.draw(st.integers(1, 5)))
        items: list[Any] = []
        parts: list[tuple[str | None, int, Builder]] = []  # (name template or None, repeat, builder)
        for _ in range(n):
            style = self.draw(st.sampled_from(["plain", "plain", "named", "repeat_block", "repeat_leaf"]))
            if style == "repeat_block":
                block = self.block() if self.draw(st.booleans()) else None
                if block is None or not block.same_dim:
                    style = "repeat_leaf"
                else:
                    count = int(self.draw(st.integers(0, 3)))
                    template = self.draw(st.sampled_from([None, "layer{i}", "b{i}_x", "{i}x"]))
                    item: dict[str, Any] = {"use": block.name, "with": {"d": d}, "repeat": count}
                    if template is not None:
                        item["name"] = self.fresh("r") + "_" + template
                    full = {**block.params, "d": d}
                    items.append(item)
                    parts.append((item.get("name"), count, lambda ctx, full=full, block=block: block.make(full)))
                    continue
            if style == "repeat_leaf":
                count = int(self.draw(st.integers(0, 3)))
                cls_name = self.draw(st.sampled_from(["ReLU", "Tanh", "Identity"]))
                item = {"type": cls_name, "repeat": count}
                if self.draw(st.booleans()):
                    item["name"] = self.fresh("a") + "_{i}"
                items.append(item)
                cls = getattr(nn, cls_name)
                parts.append((item.get("name"), count, lambda ctx, cls=cls: cls()))
                continue
            child, d, make = self.node(d, depth - 1)
            if style == "named":
                cname = self.fresh("n")
                if isinstance(child, dict) and "name" not in child:
                    child = {**child, "name": cname}
                elif isinstance(child, list):
                    child = {"sequential": child, "name": cname}
                else:  # a call string: wrap it, and the reference wraps it too
                    child = {"sequential": [child], "name": cname}
                    inner = make
                    make = lambda ctx, inner=inner: nn.Sequential(inner(ctx))  # noqa: E731
                items.append(child)
                parts.append((cname, 1, make))
                continue
            if isinstance(child, dict) and self.draw(st.integers(0, 5)) == 0 and "ref" not in child and "repeat" not in child:
                child = {**child, "frozen": True}
                inner_make = make

                def frozen_make(ctx: dict[str, nn.Module], inner_make: Builder = inner_make) -> nn.Module:
                    m = inner_make(ctx)
                    m.requires_grad_(False)
                    return m

                make = frozen_make
            items.append(child)
            parts.append((None, 1, make))

        def make_list(ctx: dict[str, nn.Module]) -> nn.Module:
            s = nn.Sequential()
            for template, count, make in parts:
                for i in range(count):
                    name = str(len(s._modules)) if template is None else template.format(i=i)
                    s.add_module(name, make(ctx))
            return s

        return items, d, make_list


@st.composite
def model_files(draw: Any) -> tuple[str, Callable[[], nn.Module], int, bool]:
    """(YAML text, plain-torch builder, seed, seed written in the file)."""
    gen = ModelGen(draw)
    for i in range(int(draw(st.integers(0, 3)))):
        gen.vars[f"h{i}"] = int(draw(st.integers(1, 6)))
    d0 = gen.dim()
    container = draw(st.integers(0, 9)) > 0  # mostly a container at the root; sometimes a single module
    model, _, make = gen.node(d0, int(draw(st.integers(1, 3))), container=container)
    seed = int(draw(st.integers(0, 2**32 - 1)))
    in_file = bool(draw(st.booleans()))
    doc: dict[str, Any] = {"netinspect": 1, "name": "fuzz"}
    if in_file:
        doc["seed"] = seed
    if gen.vars:
        doc["vars"] = dict(gen.vars)
    if gen.block_yaml:
        doc["blocks"] = gen.block_yaml
    if gen.shared_yaml:
        doc["shared"] = gen.shared_yaml
    doc["model"] = model
    flow = draw(st.sampled_from([False, None]))
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=flow, width=10_000)
    shared_makers = [(name, maker) for name, (_, maker) in gen.shared.items()]

    def reference() -> nn.Module:
        torch.manual_seed(seed)
        ctx = {}
        for name, maker in shared_makers:  # shared modules are constructed first, in file order
            ctx[name] = maker()
        return make(ctx)

    return text, reference, seed, in_file


def _groups(m: nn.Module) -> list[list[str]]:
    by_id: dict[int, list[str]] = {}
    for name, p in m.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    return sorted(by_id.values())


def assert_same_module(got: nn.Module, want: nn.Module, text: str) -> None:
    assert str(got) == str(want), f"print(model) differs\n{text}\n--- netinspect:\n{got}\n--- torch:\n{want}"
    gsd, wsd = got.state_dict(), want.state_dict()
    assert [(k, tuple(v.shape)) for k, v in gsd.items()] == [(k, tuple(v.shape)) for k, v in wsd.items()], text
    gnp = [(n, tuple(p.shape), p.requires_grad) for n, p in got.named_parameters(remove_duplicate=False)]
    wnp = [(n, tuple(p.shape), p.requires_grad) for n, p in want.named_parameters(remove_duplicate=False)]
    assert gnp == wnp, text
    assert [n for n, _ in got.named_modules(remove_duplicate=False)] == [n for n, _ in want.named_modules(remove_duplicate=False)], text
    assert _groups(got) == _groups(want), f"parameter sharing differs\n{text}"
    for k in wsd:
        assert gsd[k].dtype == wsd[k].dtype, k
        assert torch.equal(gsd[k], wsd[k]), f"{k}: values differ at the same seed\n{text}"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=model_files())
def test_random_valid_model_matches_torch(case: tuple[str, Callable[[], nn.Module], int, bool]) -> None:
    text, reference, seed, in_file = case
    spec = parse_model(text, "fuzz.yaml")
    built = build(spec) if in_file else build(spec, seed=seed)
    want = reference()
    assert_same_module(built.module, want, text)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=model_files())
def test_random_valid_model_cli(case: tuple[str, Callable[[], nn.Module], int, bool], tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same files through the CLI: validate says ok, params --json agrees with torch."""
    text, reference, seed, _ = case
    path = tmp_path_factory.mktemp("fuzz") / "m.yaml"
    path.write_text(text, encoding="utf-8")
    result = _runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, f"{text}\n{result.stderr}"
    result = _runner.invoke(app, ["params", str(path), "--json", "--seed", str(seed)])
    assert result.exit_code == 0, f"{text}\n{result.stderr}"
    import json

    doc = json.loads(result.stdout)
    want = reference()
    assert [p["name"] for p in doc["parameters"]] == [n for n, _ in want.named_parameters(remove_duplicate=False)]
    unique = {id(p): p.numel() for p in want.parameters()}
    assert doc["totals"]["unique"] == sum(unique.values())
    assert doc["totals"]["by_path"] == sum(p.numel() for _, p in want.named_parameters(remove_duplicate=False))


# ================================================================================================
# (b) mutation fuzzing of the built-in configs
# ================================================================================================

BIG = frozenset({"gpt2-xl", "llama-7b", "llama-70b"})
MEDIUM = frozenset({"alexnet", "vgg11"})  # 61M / 133M parameters: in CI their mutants stay on meta too
ALLOWED_EXITS = {0, 1, 3, 4}
_TOKEN = re.compile(r"\s+|[\[\]{}(),:]|[^\s\[\]{}(),:]+")
INSERTS = list("[]{}(),:-&*!|>'\"%@`#?\t\\$") + [
    "\n",
    "  ",
    "0",
    "9" * 30,
    "-1",
    "**",
    "\u00e9",
    "\x00",
    "\x07",
    "\ufeff",
    "*a",
    "&a ",
    "!!python/object/apply:os.system ",
    "${",
    "}",
    "{i}",
]


OPS = [
    "del_line",
    "dup_line",
    "swap_lines",
    "del_token",
    "dup_token",
    "swap_tokens",
    "insert",
    "insert",
    "number",
    "indent",
    "class",
    "class",
    "key",
]
# module classes a mutant may swap in: odd constructors (modules as arguments, many defaults,
# lazy shapes, containers) and odd forwards (several inputs, tuples out)
CLASSES = [
    "Linear",
    "Bilinear",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "Embedding",
    "EmbeddingBag",
    "LSTM",
    "GRU",
    "RNN",
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "TransformerEncoder",
    "Transformer",
    "LayerNorm",
    "GroupNorm",
    "BatchNorm2d",
    "InstanceNorm1d",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "Unflatten",
    "Upsample",
    "PixelShuffle",
    "MaxPool2d",
    "AdaptiveAvgPool2d",
    "Dropout",
    "Identity",
    "ReLU",
    "PReLU",
    "Threshold",
    "Hardtanh",
    "Fold",
    "Unfold",
    "ChannelShuffle",
    "CrossEntropyLoss",
    "CTCLoss",
    "LazyLinear",
    "LazyConv2d",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "ParameterList",
    "Module",
    "Container",
    "SyncBatchNorm",
    "RMSNorm",
    "ZeroPad2d",
    "CircularPad3d",
]
KEYS = [
    "netinspect",
    "name",
    "doc",
    "input",
    "dtype",
    "seed",
    "vars",
    "blocks",
    "shared",
    "model",
    "init",
    "tie",
    "type",
    "args",
    "kwargs",
    "sequential",
    "use",
    "with",
    "ref",
    "repeat",
    "frozen",
    "params",
    "required",
    "body",
    "target",
    "types",
    "weight",
    "bias",
    "param",
    "to",
    "shape",
    "high",
    "<<",
]


def config_texts() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(CONFIGS.glob("*.yaml"))}


def _edit(items: list[str], i: int, op: str, rnd: random.Random) -> None:
    """``del_*``, ``dup_*`` or ``swap_*`` the item at ``i`` (a line or a token)."""
    if op.startswith("del"):
        del items[i]
    elif op.startswith("dup"):
        items.insert(i, items[i])
    else:
        j = rnd.randrange(len(items))
        items[i], items[j] = items[j], items[i]


def mutate(text: str, rnd: random.Random, rounds: int | None = None) -> str:
    """Apply 1-3 random edits: delete/duplicate/swap lines or tokens, insert characters, bump numbers."""
    for _ in range(rounds or rnd.randint(1, 3)):
        op = rnd.choice(OPS)
        lines = text.splitlines(keepends=True)
        if op in ("del_line", "dup_line", "swap_lines", "indent") and lines:
            i = rnd.randrange(len(lines))
            if op != "indent":
                _edit(lines, i, op, rnd)
            else:
                lines[i] = rnd.choice(["", " ", "  ", "\t"]) + lines[i].lstrip(" ") if rnd.random() < 0.5 else " " + lines[i]
            text = "".join(lines)
            continue
        tokens = _TOKEN.findall(text)
        if not tokens:
            text = rnd.choice(INSERTS)
            continue
        i = rnd.randrange(len(tokens))
        if op in ("del_token", "dup_token", "swap_tokens"):
            _edit(tokens, i, op, rnd)
        elif op == "class":
            names = [k for k, t in enumerate(tokens) if t[:1].isupper() and t.isidentifier()]
            if names:
                tokens[rnd.choice(names)] = rnd.choice(CLASSES)
        elif op == "key":
            keys = [k for k in range(len(tokens) - 1) if tokens[k + 1] == ":" and tokens[k].isidentifier()]
            if keys:
                tokens[rnd.choice(keys)] = rnd.choice(KEYS)
        elif op == "number":
            nums = [k for k, t in enumerate(tokens) if t.isdigit()]
            if nums:
                k = rnd.choice(nums)
                tokens[k] = rnd.choice(["0", "-1", "1000000000", "2**40", "9**9**9", str(int(tokens[k]) * 1000), "1.5", "True"])
        else:
            pos = rnd.randint(0, len(tokens[i]))
            tokens[i] = tokens[i][:pos] + rnd.choice(INSERTS) + tokens[i][pos:]
        text = "".join(tokens)
    return text


def command_for(name: str, rnd: random.Random, meta_only: set[str] | frozenset[str] = BIG) -> list[str]:
    """A command to run on a mutant of config ``name`` (the ``meta_only`` models only on the meta device)."""
    if name in meta_only:
        return rnd.choice([["validate"], ["params", "--device", "meta"], ["tree", "--device", "meta"], ["shared", "--device", "meta"]])
    return rnd.choice([["validate"], ["validate"], ["params"], ["tree"], ["state-dict"], ["shared"], ["params", "--device", "meta"]])


_runner = CliRunner()


@dataclass
class Outcome:
    code: int
    problem: str | None  # None when the run met every rule


def check_run(path: Path, code: int, stdout: str, stderr: str, exc: BaseException | None) -> str | None:
    """What went wrong with one run (None: nothing)."""
    if exc is not None and not isinstance(exc, SystemExit):
        return f"uncaught {type(exc).__name__}: {exc}"
    if "Traceback" in stdout + stderr:
        return "traceback in the output"
    if "internal error" in stderr:
        return "internal error: " + stderr.strip().splitlines()[0][:500]
    if code not in ALLOWED_EXITS:
        return f"exit code {code}: " + (stderr.strip().splitlines() or [""])[0][:500]
    if code == 3:
        first = (stderr.strip().splitlines() or [""])[0]
        if not re.match(rf"{re.escape(str(path))}:\d+:\d+: error: ", first):
            return f"exit 3 without FILE:LINE:COL: {first[:500]}"
    return None


def run_in_process(path: Path, args: list[str]) -> Outcome:
    result = _runner.invoke(app, [args[0], str(path), *args[1:]], catch_exceptions=True)
    code = result.exit_code
    return Outcome(code, check_run(path, code, result.stdout, result.stderr, result.exception))


def run_subprocess(path: Path, args: list[str], timeout: float = 120) -> Outcome:
    proc = subprocess.run(
        [sys.executable, "-m", "netinspect", args[0], str(path), *args[1:]],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
    return Outcome(proc.returncode, check_run(path, proc.returncode, proc.stdout, proc.stderr, None))


CONFIG_NAMES = sorted(config_texts())


@pytest.mark.slow
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(CONFIG_NAMES), rnd=st.randoms(use_true_random=False))
def test_mutated_configs_fail_cleanly(name: str, rnd: random.Random, tmp_path: Path) -> None:
    text = mutate(config_texts()[name], rnd)
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    args = command_for(name, rnd, BIG | MEDIUM)
    out = run_in_process(path, args)
    assert out.problem is None, f"netinspect {' '.join(args)} on a mutant of {name}: {out.problem}\n--- file:\n{text}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_mutated_configs_subprocess(seed: int, tmp_path: Path) -> None:
    """A few mutants through the real console entry point."""
    rnd = random.Random(1000 + seed)
    texts = config_texts()
    name = rnd.choice([n for n in CONFIG_NAMES if n not in BIG | MEDIUM])
    text = mutate(texts[name], rnd, rounds=1)
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    args = command_for(name, rnd)
    out = run_subprocess(path, args)
    assert out.problem is None, f"netinspect {' '.join(args)} on a mutant of {name}: {out.problem}\n--- file:\n{text}"


def test_unmutated_configs_validate() -> None:
    """The fuzzing's starting points are valid (so a failure above is the mutation's doing)."""
    for name in CONFIG_NAMES:
        result = _runner.invoke(app, ["validate", str(CONFIGS / f"{name}.yaml")])
        assert result.exit_code == 0, f"{name}: {result.stderr}"
