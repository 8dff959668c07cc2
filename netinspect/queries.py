"""Questions about a built module → plain records (dataclasses). Nothing here prints.

Every count groups ``named_parameters(remove_duplicate=False)`` by ``id(param)``
(``data_ptr()`` is 0 on meta), so a tied or reused parameter is counted once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import tracing
from .build import Built, all_named_modules
from .build.fxgraph import GraphModule
from .build.inputs import draw_inputs
from .build.inputs import input_bytes as inputs_bytes
from .errors import NetinspectError, Pos, RunFailure, UsageError, did_you_mean, first_line
from .layers import dtype_name
from .records import ParamRow, SharedGroup, StateEntry, Totals, TreeNode, shape_tree
from .records import walk_tree as walk_tree  # re-exported: the CLI walks trees through queries
from .spec import InputSpec

if TYPE_CHECKING:
    from .schemes import SchemeStep, TensorStats
from .tables import TensorInfo, TensorTable


def shape_of(t: torch.Tensor) -> list[int]:
    return [int(d) for d in t.shape]


def device_name(t: torch.Tensor | torch.device) -> str:
    return str(t.device if isinstance(t, torch.Tensor) else t)


def submodule(root: nn.Module, path: str) -> nn.Module:
    """``--module PATH`` (``0``, ``0.block1``); an unknown path is a usage error with close names."""
    if path in ("", "."):
        return root
    try:
        return root.get_submodule(path)
    except AttributeError:
        paths = [p for p, _ in root.named_modules() if p]
        raise UsageError.at(
            None, f"no module at path '{path}'", did_you_mean(path, paths) or "module paths: " + ", ".join(paths[:10])
        ) from None


# --- tree ---------------------------------------------------------------------------------------


def all_named_parameters(root: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``root.named_parameters(remove_duplicate=False)`` as a list (same paths, same order)."""
    out: list[tuple[str, nn.Parameter]] = []
    for mpath, m in all_named_modules(root):
        for pname, p in m._parameters.items():
            if p is not None:
                out.append((f"{mpath}.{pname}" if mpath else pname, p))
    return out


def object_paths(root: nn.Module) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """id(module) → every path of that module, id(param) → every path of that Parameter, in
    ``named_modules`` / ``named_parameters(remove_duplicate=False)`` order (one walk)."""
    mpaths: dict[int, list[str]] = {}
    ppaths: dict[int, list[str]] = {}
    for mpath, m in all_named_modules(root):
        mpaths.setdefault(id(m), []).append(mpath)
        for pname, p in m._parameters.items():
            if p is not None:
                ppaths.setdefault(id(p), []).append(f"{mpath}.{pname}" if mpath else pname)
    return mpaths, ppaths


def tree(built: Built) -> TreeNode:
    root = built.module
    mpaths, ppaths = object_paths(root)
    multi = {pid for pid, ps in ppaths.items() if len(ps) > 1}
    tied = built.tied_ids
    totals: dict[int, tuple[int, frozenset[int] | None]] = {}
    numel_of: dict[int, int] = {}

    def subtree_total(m: nn.Module) -> tuple[int, frozenset[int] | None]:
        # (unique count, the shared-param ids in the subtree, or None when there are none)
        key = id(m)
        if key in totals:
            return totals[key]
        count = 0
        shared: set[int] = set()
        for p in m._parameters.values():
            if p is None:
                continue
            n = numel_of.get(id(p))
            if n is None:
                n = numel_of[id(p)] = p.numel()
            if id(p) in multi:
                shared.add(id(p))
            else:
                count += n
        for child in m._modules.values():
            if child is None:
                continue
            c, s = subtree_total(child)
            count += c
            if s:
                shared |= s
        result = (count, frozenset(shared) if shared else None)
        totals[key] = result
        return result

    def build_node(name: str, path: str, m: nn.Module) -> TreeNode:
        own = 0
        tied_text: list[str] = []
        seen: set[int] = set()
        c, s = subtree_total(m)  # fills numel_of for every parameter below m
        trainable = False
        for pname, p in m._parameters.items():
            if p is None:
                continue
            trainable = trainable or p.requires_grad
            if id(p) in seen:
                continue
            seen.add(id(p))
            own += numel_of[id(p)]
            if id(p) in tied:
                mine = f"{path}.{pname}" if path else pname
                tied_text.append(" = ".join([pname] + [q for q in ppaths[id(p)] if q != mine]))
        total = c + (sum(numel_of[i] for i in s) if s else 0)
        frozen = bool(seen) and not trainable
        node = TreeNode(name, path, type(m).__name__, m.extra_repr(), own, total, [], mpaths[id(m)], tied_text, frozen)
        prefix = path + "." if path else ""
        children = node.children
        for cname, child in m._modules.items():
            if child is not None:
                children.append(build_node(cname, prefix + cname, child))
        # what the text tree folds runs of identical siblings by: structure, counts, markers, and
        # which module object a reused node is (so cells that reuse one module never fold with
        # cells that own theirs)
        reused = id(m) if len(node.paths) > 1 else None
        kids = tuple((c.name, c.signature) for c in children)
        node.signature = (node.type, node.args, own, total, frozen, tuple(tied_text), reused, kids)
        return node

    return build_node("", "", root)


# --- params -------------------------------------------------------------------------------------


def params(module: nn.Module) -> tuple[list[ParamRow], Totals]:
    """One row per parameter path, and totals that count each Parameter once."""
    named = all_named_parameters(module)
    paths: dict[int, list[str]] = {}
    for name, p in named:
        paths.setdefault(id(p), []).append(name)
    facts: dict[int, tuple[list[int], str, str, bool, int, str]] = {}
    rows: list[ParamRow] = []
    for name, p in named:
        f = facts.get(id(p))
        if f is None:
            grad = "none" if p.grad is None else "present"
            f = facts[id(p)] = (shape_of(p), dtype_name(p.dtype), device_name(p), bool(p.requires_grad), p.numel(), grad)
        rows.append(ParamRow(name, list(f[0]), f[1], f[2], f[3], f[4], f[5], paths[id(p)]))
    uniq = {id(p): p for _, p in named}
    bufs = {id(b): b for b in module.buffers()}
    totals = Totals(
        unique=sum(p.numel() for p in uniq.values()),
        by_path=sum(r.numel for r in rows),
        trainable=sum(p.numel() for p in uniq.values() if p.requires_grad),
        frozen=sum(p.numel() for p in uniq.values() if not p.requires_grad),
        bytes=sum(p.numel() * p.element_size() for p in uniq.values()),
        buffers=sum(b.numel() for b in bufs.values()),
        buffer_bytes=sum(b.numel() * b.element_size() for b in bufs.values()),
        tensors=len(uniq),
    )
    return rows, totals


# --- state_dict ---------------------------------------------------------------------------------


def state_dict(module: nn.Module) -> list[StateEntry]:
    sd = module.state_dict(keep_vars=True)
    return [
        StateEntry(
            k, shape_of(t), dtype_name(t.dtype), device_name(t), "parameter" if isinstance(t, nn.Parameter) else "buffer", t, t.numel()
        )
        for k, t in sd.items()
    ]


def model_table(built: Built) -> TensorTable:
    """The built model's ``state_dict()`` as a tensor table (values unless it is on meta): keys that are
    one tensor (a tie, a reused module) share their first key as ``stored``."""
    sd = built.module.state_dict(keep_vars=True)
    tied = built.tied_ids
    first: dict[int, str] = {}
    entries = []
    for k, t in sd.items():
        stored = first.setdefault(id(t), k)
        via = None if stored == k else "tie" if id(t) in tied else "module"
        param = isinstance(t, nn.Parameter)
        numel = t.numel()
        entries.append(
            TensorInfo(
                k,
                tuple(shape_of(t)),
                dtype_name(t.dtype),
                numel,
                numel * t.element_size(),
                stored,
                via,
                "parameter" if param else "buffer",
                bool(t.requires_grad) if param else None,
                device_name(t),
            )
        )

    def read(key: str) -> torch.Tensor:
        t: torch.Tensor = sd[key]
        return t.detach()

    return TensorTable(built.spec.name, "model", entries, [], None if built.device.type == "meta" else read)


def values(t: torch.Tensor) -> Any:
    """A tensor's values as nested Python lists (NaN/inf kept as floats)."""
    return t.detach().cpu().tolist()


# --- shared -------------------------------------------------------------------------------------


def shared(built: Built, module: nn.Module | None = None) -> tuple[list[SharedGroup], int, int]:
    """Groups of parameter paths that are one Parameter, with why: module reuse or a tie."""
    root = module if module is not None else built.module
    tied = built.tied_ids
    groups: dict[int, list[str]] = {}
    objs: dict[int, nn.Parameter] = {}
    owners: dict[int, list[str]] = {}
    by_path = 0
    for mpath, m in all_named_modules(root):
        for pname, p in m._parameters.items():
            if p is None:
                continue
            path = f"{mpath}.{pname}" if mpath else pname
            groups.setdefault(id(p), []).append(path)
            owners.setdefault(id(p), []).append(mpath)
            objs[id(p)] = p
            by_path += p.numel()
    out: list[SharedGroup] = []
    for pid, paths in groups.items():
        if len(paths) < 2:
            continue
        p = objs[pid]
        distinct_owner_objects = {id(root.get_submodule(o)) if o else id(root) for o in owners[pid]}
        cause = "tie" if pid in tied or len(distinct_owner_objects) > 1 else "module"
        out.append(SharedGroup(paths, shape_of(p), p.numel(), cause, owners[pid]))
    unique = sum(p.numel() for p in objs.values())
    return out, unique, by_path


# --- forward ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ModuleCall:
    """A module's output shape, or (``line`` set) a step of a graph module's forward: ``path`` is
    the module's, ``type`` what the step calls (``add``, ``torch.cat``, ``.view``), ``code`` its line."""

    path: str
    type: str
    output_shape: Any
    line: int | None = None
    code: str | None = None
    name: str | None = None


@dataclass(slots=True)
class ForwardResult:
    input_shapes: list[list[int]]
    output_shape: Any
    output: Any
    modules: list[ModuleCall]


def make_inputs(built: Built, specs: list[InputSpec]) -> list[torch.Tensor]:
    """Seeded inputs: ``torch.rand`` for float inputs, ``torch.randint`` below ``high`` for integer ones.
    A model with lazy modules already drew its file's inputs while it was built: those are used."""
    if built.inputs is not None and specs == list(built.spec.inputs):
        return list(built.inputs)
    return draw_inputs(built.module, specs, built.dtype, built.device)


def forward(built: Built, specs: list[InputSpec], record: bool = True, train: bool = True) -> ForwardResult:
    """Run the model once (in training mode, as D2L's ``net(X)``, unless not ``train``) with hooks
    that record each module's output shape and, for graph modules, each step's (unless not
    ``record``: validate only needs to know where it fails); a failure names the module, the step
    of a written forward, and the input shapes."""
    root = built.module
    mpaths, _ = object_paths(root)
    calls_seen: dict[int, int] = {}
    stack: list[tuple[nn.Module, str, Any]] = []
    records: list[ModuleCall] = []
    steps: dict[str, list[ModuleCall]] = {}  # module path -> its steps, in call order
    if built.device.type == "meta" and record:
        return _forward_on_meta(built, specs, train)
    if built.device.type != "meta":
        from .devices import check_fits

        check_fits(input_bytes(built, specs), built.device, what="the input")
    inputs = make_inputs(built, specs)
    root.train(train)

    def path_of(m: nn.Module) -> str:
        ps = mpaths.get(id(m))
        if not ps:
            return "?"
        k = calls_seen.get(id(m), 0)
        calls_seen[id(m)] = k + 1
        return ps[k % len(ps)]

    def pre(m: nn.Module, args: Any) -> None:
        stack.append((m, path_of(m), args))  # shapes are read only if the call fails

    def post(m: nn.Module, args: Any, out: Any) -> None:
        if stack:
            _, path, _ = stack.pop()
            if record:
                records.append(ModuleCall(path, type(m).__name__, shape_tree(out)))

    class Steps:
        def on_step(self, step: tracing.Step) -> None:
            if _has_tensor(step.output):
                path = stack[-1][1] if stack else ""
                steps.setdefault(path, []).append(ModuleCall(path, step.op, shape_tree(step.output), step.line, step.text, step.name))

    h1 = nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = nn.modules.module.register_module_forward_hook(post)
    listening = tracing.listen(Steps()) if record else contextlib.nullcontext()
    try:
        with listening:
            out = root(*inputs)
    except Exception as exc:
        raise _forward_failure(built, stack, exc) from exc
    finally:
        h1.remove()
        h2.remove()
    order = {p: i for i, (p, _) in enumerate(all_named_modules(root))}
    records.sort(key=lambda r: (order.get(r.path, math.inf), 0))
    if steps:  # each graph module's steps right after its own row
        records = [x for r in records for x in (r, *steps.pop(r.path, ()))]
    return ForwardResult([shape_of(t) for t in inputs], shape_tree(out), out, records)


def _forward_on_meta(built: Built, specs: list[InputSpec], train: bool) -> ForwardResult:
    """Shapes only: through the cost engine, which runs a repeated block once and replays its
    records (80 decoder layers cost one), without the imports meta kernels would pull in."""
    from . import analysis

    root = built.module
    root.train(train)
    class Steps:  # graph modules run step by step while someone listens; the engine records the steps
        def on_step(self, step: tracing.Step) -> None:
            pass

    with analysis.without_heavy_imports(), tracing.listen(Steps()):
        inputs = make_inputs(built, specs)
        try:
            costs = analysis.analyse(root, inputs, backward=False)
        except analysis.ForwardFailed as exc:
            f = exc.failure
            raise (
                forward_failure(built, [], "", None, exc.cause)
                if f is None
                else forward_failure(built, f.modules, f.path, f.input_shapes, exc.cause)
            ) from exc.cause
    mpaths, _ = object_paths(root)
    records = [ModuleCall(c.path, c.type, c.output) for c in costs.calls if c.path != "?"]
    steps: dict[str, list[ModuleCall]] = {}
    for st in costs.steps:
        out = shape_tree(st.output)
        if _has_shape(out):
            path = (mpaths.get(id(st.module)) or ["?"])[0]
            steps.setdefault(path, []).append(ModuleCall(path, st.op, out, st.line, st.text, st.name))
    order = {p: i for i, (p, _) in enumerate(all_named_modules(root))}
    records.sort(key=lambda r: (order.get(r.path, math.inf), 0))
    if steps:
        records = [x for r in records for x in (r, *steps.pop(r.path, ()))]
    return ForwardResult([shape_of(t) for t in inputs], shape_tree(costs.output), costs.output, records)


def _has_shape(x: Any) -> bool:
    if isinstance(x, list) and x and all(isinstance(d, int) for d in x):
        return True
    return isinstance(x, list) and any(_has_shape(i) for i in x)


def _has_tensor(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return True
    if isinstance(x, (tuple, list)):
        return any(_has_tensor(i) for i in x)
    return False


#: Below this size ``validate`` checks the forward pass on CPU with uninitialised storage: a first
#: forward through meta tensors imports torch._dynamo (seconds), an empty CPU copy costs nothing.
CPU_CHECK_BYTES = 64 << 20


def input_bytes(built: Built, specs: list[InputSpec]) -> int:
    return inputs_bytes(specs, built.dtype)


def check_forward(built: Built) -> None:
    """Run the file's ``input:`` through a meta-built model to check shapes (validate)."""
    specs = list(built.spec.inputs)
    if built.bytes_needed + input_bytes(built, specs) <= CPU_CHECK_BYTES:
        from .build import allocate, retie

        built.device = torch.device("cpu")
        allocate([built.module], built.device)
        retie(built.ties)
    with torch.no_grad():
        forward(built, specs, record=False)


def _forward_failure(built: Built, stack: list[tuple[nn.Module, str, Any]], exc: Exception) -> NetinspectError:
    if not stack:
        return forward_failure(built, [], "", None, exc)
    m, path, args = stack[-1]
    return forward_failure(built, [mod for mod, _, _ in reversed(stack)], path, shape_tree(args), exc)


def forward_failure(built: Built, modules: list[nn.Module], path: str, input_shapes: Any, exc: BaseException) -> NetinspectError:
    """A forward that raised: where (the module's path; the file position of the step of a written
    forward that raised, else of the nearest module declared in the file), on what input, and why.
    ``modules``: the module that raised and its callers, innermost first."""
    msg = first_line(exc, limit=10_000)
    if not modules:
        return RunFailure.at(None, f"forward failed: {type(exc).__name__}: {msg}")
    m = modules[0]
    pos: Pos | None = type(m).failing_step(exc) if isinstance(m, GraphModule) else None
    for mod in modules:
        if pos is not None:
            break
        pos = built.origin.get(id(mod))
    where = f"'{path}'" if path else "the root module"
    hint = "check the sizes of the layer and the one before it" if "shape" in msg or "size" in msg else None
    shown = _fmt_shapes(input_shapes)
    return RunFailure.at(pos, f"forward failed in {where} ({type(m).__name__}) on input {shown}: {type(exc).__name__}: {msg}", hint)


def _fmt_shapes(shapes: Any) -> str:
    if isinstance(shapes, list) and len(shapes) == 1:
        shapes = shapes[0]
    return f"shape {shapes}" if shapes is not None else "(no tensor)"


def iter_unique_params(module: nn.Module) -> Iterator[tuple[str, nn.Parameter, list[str]]]:
    """(first path, parameter, other paths) for each distinct Parameter."""
    _, paths = object_paths(module)
    seen: set[int] = set()
    for name, p in all_named_parameters(module):
        if id(p) in seen:
            continue
        seen.add(id(p))
        yield name, p, paths[id(p)][1:]


# --- init report --------------------------------------------------------------------------------


@dataclass(slots=True)
class InitRow:
    name: str
    shape: list[int]
    scheme: str | None
    mean: float
    std: float | None
    min: float
    max: float
    zero_fraction: float
    expected_std: float | None
    shared_with: list[str]


@dataclass(frozen=True, slots=True)
class RowPlan:
    """An ``init`` row before its statistics: the parameter's first path, shape, scheme chain (text),
    expected std and other paths, and (id(owner), name) of its first owner."""

    name: str
    shape: list[int]
    scheme: str | None
    expected_std: float | None
    shared_with: list[str]
    attr: tuple[int, str]


def init_row_plans(module: nn.Module, chains: Mapping[int, Sequence[SchemeStep]]) -> list[RowPlan]:
    """One row per distinct Parameter (under its first path), from its scheme chain (by id(param));
    what a row says of the scheme is known before the values exist (on meta too)."""
    from .schemes import expected_std

    owners: dict[int, tuple[nn.Module, str]] = {}
    for m in module.modules():
        for pname, p in m._parameters.items():
            if p is not None:
                owners.setdefault(id(p), (m, pname))
    rows: list[RowPlan] = []
    for name, p, others in iter_unique_params(module):
        owner, pname = owners[id(p)]
        chain = chains.get(id(p))
        exp = expected_std(chain, p, owner, pname) if chain else None
        scheme = None
        if chain:
            scheme = chain[0].text if len(chain) == 1 else "[" + ", ".join(s.text for s in chain) + "]"
        rows.append(RowPlan(name, shape_of(p), scheme, exp, others, (id(owner), pname)))
    return rows


def init_rows(plans: Sequence[RowPlan], stats: Sequence[TensorStats]) -> list[InitRow]:
    """The rows, with each parameter's statistics (in the plans' order)."""
    return [
        InitRow(r.name, r.shape, r.scheme, st.mean, st.std, st.min, st.max, st.zero_fraction, r.expected_std, r.shared_with)
        for r, st in zip(plans, stats, strict=True)
    ]


def init_report(built: Built) -> list[InitRow]:
    """Per-parameter statistics after every rule ran (each Parameter once, under its first path)."""
    from .schemes import tensor_stats

    plans = init_row_plans(built.module, built.applied)
    return init_rows(plans, [tensor_stats(p.detach()) for _, p, _ in iter_unique_params(built.module)])
