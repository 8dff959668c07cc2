"""``netinspect code``: a built model as a standalone Python file that builds it again with plain torch.

Generated from what netinspect built (the expanded declarations and the build's plan), so the file
is a proof of the build: run in a fresh process it gives the same ``print(model)``, bit-identical
``state_dict()`` values and the same forward output. One ``nn.Module`` class per graph declaration
(its forward is the written forward, with children as ``self.NAME`` and constant conditions decided;
a second variant of a block gets a suffixed class name that prints as the block), ``build(seed,
device)`` constructs in netinspect's order, draws a lazy model's first input, ties, freezes, and
applies the init rules as ``torch.nn.init`` calls on the parameters they resolved to.
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from . import layers
from .build import Built, all_named_modules
from .build.assemble import TensorInit
from .build.inputs import default_high, input_dtype
from .build.materialise import SKIP_DEFAULT_MIN_NUMEL, default_init_steps, skipped_defaults
from .errors import UsageError
from .schemes import SchemeStep
from .spec import Decl, Graph, Leaf, Ref, Seq, TensorEntry, walk
from .spec.forward import Program

_RESERVED = {"nn", "torch", "F", "OrderedDict", "build", "SHARED", "FIRST_INPUT", "math"}


@dataclass
class _Writer:
    built: Built
    allowed: dict[str, type[nn.Module]]
    class_names: dict[int, str] = field(default_factory=dict)  # id(Graph decl) -> Python class name
    imports: set[str] = field(default_factory=set)
    classes: list[str] = field(default_factory=list)
    uses_ordered_dict: bool = False

    # --- names ----------------------------------------------------------------------------------

    def name_classes(self) -> None:
        taken: set[str] = set(_RESERVED)
        for root in self.built.spec.roots():
            for d in walk(root):
                if isinstance(d, Graph) and id(d) not in self.class_names:
                    name, k = d.class_name, 1
                    while name in taken or keyword.iskeyword(name):
                        name = f"{d.class_name}_{k}"
                        k += 1
                    taken.add(name)
                    self.class_names[id(d)] = name

    def module_class(self, type_name: str) -> str:
        short = type_name.removeprefix("torch.nn.").removeprefix("nn.")
        if "." not in short and short in layers.nn_classes():
            return f"nn.{short}"
        cls = self.allowed.get(type_name)
        if cls is None:
            raise UsageError.at(None, f"code: the class {type_name!r} was not granted", "pass the same --allow as for the build")
        self.imports.add(f"from {cls.__module__} import {cls.__name__}")
        return cls.__name__

    # --- expressions ----------------------------------------------------------------------------

    def expr(self, decl: Decl, indent: str) -> str:
        if isinstance(decl, Leaf):
            parts = [self.value(a, indent) for a in decl.args] + [f"{k}={self.value(v, indent)}" for k, v in decl.kwargs]
            return f"{self.module_class(decl.type_name)}({', '.join(parts)})"
        if isinstance(decl, Ref):
            return f"SHARED[{decl.shared!r}]"
        if isinstance(decl, Graph):
            self.graph_class(decl)
            return f"{self.class_names[id(decl)]}()"
        inner = indent + "    "
        names = [n for n, _ in decl.items]
        if names == [str(i) for i in range(len(names))]:
            items = [self.expr(c, inner) for _, c in decl.items]
            if not items:
                return "nn.Sequential()"
            return "nn.Sequential(\n" + "".join(f"{inner}{i},\n" for i in items) + f"{indent})"
        self.uses_ordered_dict = True
        pairs = "".join(f"{inner}    ({n!r}, {self.expr(c, inner + '    ')}),\n" for n, c in decl.items)
        return f"nn.Sequential(\n{inner}OrderedDict([\n{pairs}{inner}])\n{indent})"

    def value(self, v: Any, indent: str) -> str:
        if isinstance(v, (Leaf, Seq, Ref, Graph)):
            return self.expr(v, indent)
        if isinstance(v, tuple):
            inner = ", ".join(self.value(x, indent) for x in v)
            return f"({inner},)" if len(v) == 1 else f"({inner})"
        if isinstance(v, list):
            return "[" + ", ".join(self.value(x, indent) for x in v) + "]"
        return repr(v)

    # --- graph classes --------------------------------------------------------------------------

    def graph_class(self, decl: Graph) -> None:
        name = self.class_names[id(decl)]
        if any(c.startswith(f"class {name}(") for c in self.classes):
            return
        for step in decl.program.steps:
            if step.target.startswith("grant:"):  # a function granted with --allow pkg.mod:func
                mod, _, func = step.target.removeprefix("grant:").partition(":")
                self.imports.update({f"import {mod}", f"from {mod} import {func}"})
        lines = [f"class {name}(nn.Module):", "    def __init__(self) -> None:", "        super().__init__()"]
        for entry_name, entry in decl.entries:
            if isinstance(entry, TensorEntry):
                lines.extend(self.tensor_entry(entry_name, entry))
            else:
                lines.append(f"        self.{entry_name} = {self.expr(entry, '        ')}")
        if name != decl.class_name:
            lines += ["", "    def _get_name(self) -> str:", f"        return {decl.class_name!r}  # as print(model) shows it"]
        args = ", ".join(decl.program.inputs)
        lines += ["", f"    def forward(self, {args}):"]
        lines += ["        " + line for line in forward_source(decl).splitlines()]
        self.classes.append("\n".join(lines))

    def tensor_entry(self, name: str, entry: TensorEntry) -> list[str]:
        shape = ", ".join(str(d) for d in entry.shape)
        if entry.kind == "param":
            grad = ", requires_grad=False" if entry.frozen else ""
            lines = [f"        self.{name} = nn.Parameter(torch.empty({shape}){grad})"]
        else:
            lines = [f"        self.register_buffer({name!r}, torch.empty({shape}), persistent={entry.persistent})"]
        return lines + ["        " + line for line in scheme_lines(entry.init, f"self.{name}", "self")]


def scheme_lines(steps: Sequence[SchemeStep], target: str, owner: str) -> list[str]:
    """A scheme chain as ``torch.nn.init`` calls (and the D2L-style in-place edits) on ``target``."""
    out = []
    for step in steps:
        bound = step.bound()
        if step.name == "mask_abs_below":
            out.append(f"with torch.no_grad():\n    {target}.mul_({target}.abs() >= {bound['t']!r})")
        elif step.name == "add":
            out.append(f"with torch.no_grad():\n    {target}.add_({bound['v']!r})")
        elif step.name == "scale":
            out.append(f"with torch.no_grad():\n    {target}.mul_({bound['v']!r})")
        elif step.name == "default":
            out.append(f"_default_init({owner}, {target})")
        else:
            kwargs = ", ".join(f"{k}={v!r}" for k, v in bound.items())
            out.append(f"nn.init.{step.name}_({target}{', ' + kwargs if kwargs else ''})")
    return [line for chunk in out for line in chunk.splitlines()]


def forward_source(decl: Graph) -> str:
    """The graph's forward text as a method body: children and tensors as ``self.NAME``, vars and
    block parameters as their values, conditions decided as the build decided them."""
    program = decl.program
    tree = ast.parse("\n".join(program.lines))
    tree = _Forward(decl, program).visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


class _Forward(ast.NodeTransformer):
    def __init__(self, decl: Graph, program: Program) -> None:
        self.members = {n for n, _ in decl.entries}
        self.constants = dict(program.constants)
        self.decisions = dict(program.decisions)
        bound = set(program.inputs)
        for node in ast.walk(ast.parse("\n".join(program.lines))):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
        self.bound = bound

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if not isinstance(node.ctx, ast.Load) or node.id in self.bound:
            return node
        if node.id in self.members:
            return ast.Attribute(ast.Name("self", ast.Load()), node.id, ast.Load())
        if node.id in self.constants:
            return ast.parse(repr(self.constants[node.id]), mode="eval").body
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        chosen = node.body if self.decisions[(node.lineno, node.col_offset)] else node.orelse
        return self.visit(chosen)  # type: ignore[no-any-return]


def generate(built: Built, allowed: dict[str, type[nn.Module]] | None = None) -> str:
    """The standalone Python file for ``built`` (see the module docstring)."""
    spec = built.spec
    w = _Writer(built, allowed or {})
    w.name_classes()
    shared = [(n, w.expr(d, "            ")) for n, d in spec.shared]  # placed 12 spaces in, in build()
    root = w.expr(spec.model, "            ")
    paths = _paths(built)
    replay = _replayed(built, paths)
    dtype = str(built.dtype).removeprefix("torch.")
    seed = built.seed  # --seed, else the file's seed:, else 0
    body: list[str] = [
        f'def build(seed: int = {seed}, device: str = "cpu") -> nn.Module:',
        f'    """{spec.name}, as netinspect builds it (seed, then construction in file order)."""',
    ]
    construct = [*(f"SHARED[{n!r}] = {e}" for n, e in shared), f"model = {root}"]
    if replay is None:
        body += ["    torch.manual_seed(seed)", "    saved = torch.get_default_dtype()", f"    torch.set_default_dtype(torch.{dtype})"]
        body += ["    try:", "        with torch.device(device):"] + (["            SHARED.clear()"] if spec.shared else [])
        body += ["            " + c for c in construct]
        body += ["    finally:", "        torch.set_default_dtype(saved)"]
    else:
        body += [
            "    # netinspect skips the default init of modules that init rules overwrite entirely (models of",
            f"    # {SKIP_DEFAULT_MIN_NUMEL:,} elements or more): construct without values, then replay the rest in order",
            "    saved = torch.get_default_dtype()",
            f"    torch.set_default_dtype(torch.{dtype})",
            "    try:",
            '        with torch.device("meta"):',
        ] + (["            SHARED.clear()"] if spec.shared else [])
        body += ["            " + c for c in construct]
        body += ["    finally:", "        torch.set_default_dtype(saved)", "    model = model.to_empty(device=device)"]
    if built.lazy:
        draws = ", ".join(_draw(built, s) for s in spec.inputs)
        body += [
            "    # a first forward gives the lazy modules their shapes and values: X = torch.rand(...); model(X)",
            f"    FIRST_INPUT[:] = [{draws}]",
            "    with torch.no_grad():",
            "        model(*FIRST_INPUT)",
        ]
    for b in built.ties:
        body.append(f"    _tie(model, {_param_path(paths, b.owner, b.attr)!r}, {_param_path(paths, b.target_owner, b.target_attr)!r})")
    if replay is not None:
        body += ["    torch.manual_seed(seed)", "    with torch.no_grad():"]
        body += ["        " + line for line in replay]
    for m in built.frozen:
        body.append(f"    model{_getter(paths[id(m)])}.requires_grad_(False)")
    if built.plan:
        body.append("    # init rules, each on the parameters it resolved to, in order")
    for pl in built.plan:
        names = [_param_path(paths, owner, pname) for owner, pname in pl.targets]
        owner_needed = any(s.name == "default" for s in pl.steps)
        body.append(f"    for name in {names!r}:")
        if owner_needed:
            body.append('        owner = model.get_submodule(name.rpartition(".")[0])')
        body += ["        " + line for line in scheme_lines(pl.steps, "model.get_parameter(name)", "owner")]
    body.append("    return model")
    return _file(w, built, body)


def _file(w: _Writer, built: Built, body: list[str]) -> str:
    spec = built.spec
    head = [
        f'"""{spec.name}: built with plain PyTorch, as netinspect builds {Path(spec.file).name}.',
        "",
        "build(seed, device) returns the model; run as a script, this prints the forward output for the file's input.",
        '"""',
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
    ]
    if w.uses_ordered_dict:
        head.insert(5, "from collections import OrderedDict\n")
    head += sorted(w.imports)
    helpers = ["SHARED: dict[str, nn.Module] = {}  # shared: modules, one instance at each place that refs it"] if spec.shared else []
    if built.lazy:
        helpers.append("FIRST_INPUT: list[torch.Tensor] = []  # the lazy model's first input (the forward uses it again)")
    if built.ties:
        helpers += [
            "",
            "",
            "def _tie(model: nn.Module, path: str, to: str) -> None:",
            '    """tie: the parameter at ``path`` becomes the one at ``to``."""',
            '    owner, _, name = path.rpartition(".")',
            "    setattr(model.get_submodule(owner), name, model.get_parameter(to))",
        ]
    if any(s.name == "default" for pl in built.plan for s in pl.steps):
        helpers += [
            "",
            "",
            "def _default_init(owner: nn.Module, param: torch.Tensor) -> None:",
            '    """The owner\'s own default init, for this parameter only."""',
            "    others = [t for t in (*owner.parameters(), *owner.buffers()) if t is not param]",
            "    saved = [t.detach().clone() for t in others]",
            '    (getattr(owner, "reset_parameters", None) or owner._reset_parameters)()',
            "    with torch.no_grad():",
            "        for t, v in zip(others, saved):",
            "            t.copy_(v)",
        ]
    main = ['if __name__ == "__main__":', "    model = build()"]
    if built.spec.inputs:
        draws = ", ".join(_draw(built, s) for s in spec.inputs)
        main += [
            f"    inputs = FIRST_INPUT if FIRST_INPUT else [{draws}]" if built.lazy else f"    inputs = [{draws}]",
            "    print(model(*inputs))",
        ]
    else:
        main += ["    print(model)"]
    parts = ["\n".join(head), *(["\n".join(helpers)] if helpers else []), *w.classes, "\n".join(body), "\n".join(main)]
    return "\n\n\n".join(parts) + "\n"


def _draw(built: Built, s: Any) -> str:
    """The input as netinspect draws it (``torch.rand``, or ``torch.randint`` below ``high``)."""
    dt = input_dtype(s, built.dtype)
    shape = tuple(s.shape)
    if dt.is_floating_point:
        extra = "" if str(dt) == "torch.float32" else f", dtype={dt}"
        return f"torch.rand({shape!r}{extra})"
    high = default_high(built.module, s)
    if str(dt) == "torch.bool":
        return f"torch.randint(0, 2, {shape!r}).bool()"
    return f"torch.randint(0, {high}, {shape!r}, dtype={dt})"


def _paths(built: Built) -> dict[int, str]:
    """id(module) → its first path in named_modules(remove_duplicate=False)."""
    out: dict[int, str] = {}
    for path, m in all_named_modules(built.module):
        out.setdefault(id(m), path)
    return out


def _param_path(paths: dict[int, str], owner: nn.Module, name: str) -> str:
    base = paths[id(owner)]
    return f"{base}.{name}" if base else name


def _getter(path: str) -> str:
    return f".get_submodule({path!r})" if path else ""


def _replayed(built: Built, paths: dict[int, str]) -> list[str] | None:
    """For models whose build skips some default init (see SKIP_DEFAULT_MIN_NUMEL), the default init
    that does run, as lines in construction order; None where the plain construction is exact."""
    if not skipped_defaults(built):
        return None
    if built.lazy:
        raise UsageError.at(None, "code: a model this large with lazy modules cannot be written out", "give the lazy modules sizes")
    lines: list[str] = []
    for step in default_init_steps(built, built.constructed):
        owner = paths[id(step.module)]
        init = getattr(step.run, "__self__", None)
        if isinstance(init, TensorInit):
            lines += scheme_lines(init.steps, f"model{_getter(owner)}.{init.name}", f"model{_getter(owner)}")
        else:
            lines.append(f"model{_getter(owner)}.{getattr(step.run, '__name__', 'reset_parameters')}()")
    return lines
