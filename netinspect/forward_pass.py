"""One forward pass of a built model → records: each module's output shape, each graph step's (by
its forward line), the output; a failure located at the module, or the forward line, that raised.
On meta the pass goes through the cost engine (``analysis``), which runs a repeated block once."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import tracing
from .build import Built, all_named_modules
from .build.fxgraph import GraphModule
from .build.inputs import draw_inputs, input_bytes
from .errors import NetinspectError, Pos, RunFailure, first_line
from .queries import object_paths, shape_of
from .records import shape_tree
from .spec import InputSpec


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
    """Seeded inputs: ``torch.rand`` for float inputs, ``torch.randint`` below ``high`` for integer ones,
    once the device is known to hold them. A model with lazy modules already drew its file's inputs
    while it was built: those are used."""
    if built.inputs is not None and specs == list(built.spec.inputs):
        return list(built.inputs)
    if built.device.type != "meta":
        from .devices import check_fits

        check_fits(input_bytes(specs, built.dtype), built.device, what="the input")
    return draw_inputs(built.module, specs, built.dtype, built.device)


def analysis_failure(built: Built, exc: Any) -> NetinspectError:
    """``analysis.ForwardFailed`` as ``forward`` reports a failure: the module, the step, the input."""
    f = exc.failure
    if f is None:
        return forward_failure(built, [], "", None, exc.cause)
    return forward_failure(built, f.modules, f.path, f.input_shapes, exc.cause)


def forward(built: Built, specs: list[InputSpec], record: bool = True, train: bool = True) -> ForwardResult:
    """Run the model once (in training mode, as D2L's ``net(X)``, unless not ``train``) with hooks
    that record each module's output shape and, for graph modules, each step's (unless not
    ``record``: validate only needs to know where it fails); a failure names the module, the step
    of a written forward, and the input shapes."""
    if built.device.type == "meta" and record:
        return _forward_on_meta(built, specs, train)
    root = built.module
    mpaths, _ = object_paths(root)
    calls_seen: dict[int, int] = {}
    stack: list[tuple[nn.Module, str, Any]] = []
    records: list[ModuleCall] = []
    steps: dict[str, list[ModuleCall]] = {}  # module path -> its steps, in call order
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
    return ForwardResult([shape_of(t) for t in inputs], shape_tree(out), out, _in_tree_order(root, records, steps))


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
            raise analysis_failure(built, exc) from exc.cause
    mpaths, _ = object_paths(root)
    records = [ModuleCall(c.path, c.type, c.output) for c in costs.calls if c.path != "?"]
    steps: dict[str, list[ModuleCall]] = {}
    for st in costs.steps:
        out = shape_tree(st.output)
        if _has_shape(out):
            path = (mpaths.get(id(st.module)) or ["?"])[0]
            steps.setdefault(path, []).append(ModuleCall(path, st.op, out, st.line, st.text, st.name))
    return ForwardResult([shape_of(t) for t in inputs], shape_tree(costs.output), costs.output, _in_tree_order(root, records, steps))


def _in_tree_order(root: nn.Module, records: list[ModuleCall], steps: dict[str, list[ModuleCall]]) -> list[ModuleCall]:
    """Module rows in tree order (calls of one module in call order), each graph module's steps right after its row."""
    order = {p: i for i, (p, _) in enumerate(all_named_modules(root))}
    records.sort(key=lambda r: (order.get(r.path, math.inf), 0))
    if steps:
        records = [x for r in records for x in (r, *steps.pop(r.path, ()))]
    return records


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


def check_forward(built: Built) -> None:
    """Run the file's ``input:`` through a meta-built model to check shapes (validate)."""
    specs = list(built.spec.inputs)
    if built.bytes_needed + input_bytes(specs, built.dtype) <= CPU_CHECK_BYTES:
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
