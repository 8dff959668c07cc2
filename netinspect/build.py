"""ModelSpec → ``nn.Module``: meta first, then materialise on the chosen device.

The meta build checks every argument, shape and tie without allocating and gives the
bytes the model needs; it constructs each distinct call once, and further equal calls
(``repeat`` copies, equal lines) are copies of that module's state (see ``_Recipe``).
Materialisation then allocates and replays each module's own default init in construction
order under ``torch.manual_seed(seed)``, so the values equal those of the equivalent plain
PyTorch code. Ties made by ``tie:`` are
re-applied and checked after every materialisation (``to_empty`` splits them).
"""

from __future__ import annotations

import contextlib
import fnmatch
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import layers
from .devices import check_fits
from .errors import DeviceError, NetinspectError, Pos, Problem, Problems, SpecError, UsageError, did_you_mean
from .schemes import SchemeError, SchemeStep, apply_steps, check_step
from .spec import Decl, Leaf, ModelSpec, Ref, Rule, Seq, Tie, walk

#: Models at least this large (elements) skip the default init that init rules overwrite.
SKIP_DEFAULT_MIN_NUMEL = 1 << 24
POST_OPS = {"mask_abs_below", "add", "scale"}


@dataclass(slots=True)
class ScopedRule:
    """A rule bound to the module its target is relative to."""

    rule: Rule
    scope: nn.Module
    scope_path: str
    cli: bool = False


@dataclass(slots=True)
class TieBinding:
    tie: Tie
    owner: nn.Module
    attr: str
    original: nn.Parameter
    target_owner: nn.Module
    target_attr: str


@dataclass(slots=True)
class Planned:
    """One rule's scheme for one parameter name, resolved to (owner, name) pairs."""

    srule: ScopedRule
    param_glob: str
    steps: tuple[SchemeStep, ...]
    targets: list[tuple[nn.Module, str]]


@dataclass(slots=True)
class Built:
    spec: ModelSpec
    module: nn.Module
    device: torch.device
    dtype: torch.dtype
    seed: int
    origin: dict[int, Pos]
    ties: list[TieBinding]
    plan: list[Planned]
    applied: dict[int, list[SchemeStep]] = field(default_factory=dict)
    bytes_needed: int = 0

    @property
    def tied_ids(self) -> set[int]:
        return {id(getattr(b.owner, b.attr)) for b in self.ties}


def _noop(tensor: Any, *args: Any, **kwargs: Any) -> Any:
    return tensor


@contextlib.contextmanager
def no_init() -> Iterator[None]:
    """Skip ``torch.nn.init`` work while building on meta (it would import torch._dynamo)."""
    init = nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, _noop)
        yield
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


_PLAIN_TYPES = (type(None), bool, int, float, complex, str, torch.dtype, torch.device, types.BuiltinFunctionType)
_TENSOR_STORES = ("_parameters", "_buffers", "_modules")
_CONTAINERS = (dict, OrderedDict, set, list)


def _plain(value: Any, top: bool = True) -> bool:
    """Immutable (or, at the top of an attribute, a list that ``_Recipe`` copies) all the way down."""
    if isinstance(value, types.FunctionType):
        return value.__closure__ is None  # a closure may hold the instance it was made for
    if isinstance(value, _PLAIN_TYPES):
        return True
    if type(value) in (tuple, torch.Size) or (top and type(value) is list):
        return all(_plain(v, False) for v in value)
    return False


def _cloneable(m: nn.Module) -> bool:
    """True when ``m``'s whole state is its ``__dict__`` of plain values, standard containers and
    plain parameters/buffers, none of them reachable twice, so a copy of that state is what a
    second ``cls(*args)`` would build."""
    seen: set[int] = set()

    def ok(m: nn.Module) -> bool:
        cls = type(m)
        if not cls.__module__.startswith("torch.nn") or any("__slots__" in vars(k) for k in cls.__mro__[:-1]):
            return False
        for key, value in m.__dict__.items():
            if key in _TENSOR_STORES:
                continue
            if type(value) in (dict, OrderedDict):
                if not all(_plain(k, False) and _plain(v, False) for k, v in value.items()):
                    return False
            elif type(value) is set:
                if not all(_plain(k, False) for k in value):
                    return False
            elif not _plain(value):
                return False
        for store, kind in ((m._parameters, nn.Parameter), (m._buffers, torch.Tensor)):
            for t in store.values():
                if t is None:
                    continue
                if type(t) is not kind or t.__dict__ or id(t) in seen:
                    return False
                seen.add(id(t))
        for sub in m._modules.values():
            if sub is None:
                continue
            if id(sub) in seen or not ok(sub):
                return False
            seen.add(id(sub))
        return True

    return ok(m)


def _call_key(decl: Leaf) -> Any:
    """What a construction depends on besides the class: the arguments, each with its type (``1``,
    ``1.0`` and ``True`` are equal in Python but not as constructor arguments); None if unhashable."""
    key = (_typed(decl.args), _typed(decl.kwargs))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _typed(value: Any) -> Any:
    """``value`` with the type of every part alongside it, lists and dicts as tuples (hashable)."""
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, _typed(v)) for k, v in value.items()))
    if isinstance(value, float):
        return (float, repr(value))  # -0.0 == 0.0, and nan != nan
    return (type(value), value)


class _Recipe:
    """How to make copies of a cloneable module (see ``_cloneable``) without running its ``__init__``:
    a fresh container for each container in its state, a fresh Parameter/buffer object for each of
    its tensors (same shape, dtype, device and requires_grad), a copy of each submodule."""

    __slots__ = ("cls", "base", "containers", "params", "buffers", "modules")

    def __init__(self, proto: nn.Module) -> None:
        self.cls = type(proto)
        self.base = proto.__dict__.copy()  # every key, in order; make() replaces the containers
        self.containers = [
            (k, type(v), v.copy() if v else None)
            for k, v in proto.__dict__.items()
            if type(v) in _CONTAINERS and k not in _TENSOR_STORES
        ]
        self.params = [(n, p, p is not None and p.requires_grad) for n, p in proto._parameters.items()]
        self.buffers = list(proto._buffers.items())
        self.modules = [(n, None if m is None else _Recipe(m)) for n, m in proto._modules.items()]

    def make(self) -> nn.Module:
        state = self.base.copy()
        for key, kind, value in self.containers:
            state[key] = kind() if value is None else value.copy()  # OrderedDict.copy() is slow
        state["_parameters"] = {n: None if p is None else nn.Parameter(p, rg) for n, p, rg in self.params}
        state["_buffers"] = {n: None if b is None else b.detach() for n, b in self.buffers}
        state["_modules"] = {n: None if r is None else r.make() for n, r in self.modules}
        m: nn.Module = object.__new__(self.cls)
        object.__setattr__(m, "__dict__", state)  # not Module.__setattr__'s checks
        return m


def _postorder(m: nn.Module) -> Iterator[nn.Module]:
    for child in m.children():
        yield from _postorder(child)
    yield m


class _Assembler:
    """Constructs the module tree from declarations, in plain-PyTorch construction order."""

    def __init__(self, spec: ModelSpec, classes: dict[int, type[nn.Module]], problems: Problems, clone: bool = False) -> None:
        self.spec = spec
        #: (class, arguments) -> the first module built from them, when copies of its state may
        #: stand in for further constructions (meta builds: no values, so no random numbers to draw).
        self.protos: dict[Any, _Recipe] | None = {} if clone else None
        self.keys: dict[int, Any] = {}  # Leaf id -> its key in protos (None: not hashable)
        self.classes = classes
        self.problems = problems
        self.created: list[nn.Module] = []
        self.origin: dict[int, Pos] = {}
        self.scoped: list[ScopedRule] = []
        self.frozen: list[nn.Module] = []
        self.shared: dict[str, nn.Module] = {}
        self.shared_decls = dict(spec.shared)
        self.failed: set[int] = set()

    def _key(self, decl: Leaf, cls: type[nn.Module]) -> Any:
        if id(decl) not in self.keys:
            args = _call_key(decl)
            self.keys[id(decl)] = None if args is None else (cls, args)
        return self.keys[id(decl)]

    def run(self) -> nn.Module | None:
        for name, _ in self.spec.shared:
            self._shared(name)
        return self._make(self.spec.model, "")

    def _shared(self, name: str) -> nn.Module | None:
        if name not in self.shared:
            decl = self.shared_decls.get(name)
            if decl is None:
                return None
            m = self._make(decl, f"<shared {name}>")
            if m is None:
                return None
            self.shared[name] = m
        return self.shared[name]

    def _make(self, decl: Decl, path: str) -> nn.Module | None:
        if isinstance(decl, Ref):
            return self._shared(decl.shared)
        if isinstance(decl, Leaf):
            if id(decl) in self.failed:
                return None
            cls = self.classes[id(decl)]
            key = self._key(decl, cls) if self.protos is not None else None
            recipe = self.protos.get(key) if self.protos is not None and key is not None else None
            if recipe is not None:
                m = recipe.make()
            else:
                try:
                    m = cls(*decl.args, **dict(decl.kwargs))
                except Exception as exc:
                    self.failed.add(id(decl))
                    bare = [a for a in (*decl.args, *(v for _, v in decl.kwargs)) if isinstance(a, str) and a in self.spec.names]
                    hint = f"'{bare[0]}' is the string '{bare[0]}' here; write '${{{bare[0]}}}' for its value" if bare else None
                    self.problems.add(decl.pos, f"{layers.call_text(cls, decl.args, decl.kwargs)} failed: {_exc_text(exc)}", hint)
                    return None
                if self.protos is not None and key is not None and _cloneable(m):
                    self.protos[key] = _Recipe(m)
            self.created.append(m)
        else:
            m = nn.Sequential()
        self.origin[id(m)] = decl.pos
        for rule in decl.rules:
            self.scoped.append(ScopedRule(rule, m, path))
        if decl.frozen:
            self.frozen.append(m)
        if isinstance(decl, Seq):
            ok = True
            for (name, child), cpos in zip(decl.children, decl.child_pos or [decl.pos] * len(decl.children), strict=False):
                sub = self._make(child, f"{path}.{name}" if path else name)
                if sub is None:
                    ok = False
                    continue
                try:
                    m.add_module(name, sub)
                except (KeyError, TypeError) as exc:
                    self.problems.add(cpos, f"bad child name '{name}': {_exc_text(exc)}", "pick another name")
                    ok = False
            if not ok:
                return None
        return m


def _exc_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, KeyError) and first.startswith(("'", '"')):
        first = first[1:-1]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def resolve_classes(spec: ModelSpec, allowed: dict[str, type[nn.Module]]) -> dict[int, type[nn.Module]]:
    """Class and signature of every distinct Leaf, checked once (not per repeat copy)."""
    problems = Problems()
    classes: dict[int, type[nn.Module]] = {}
    decls = [spec.model] + [d for _, d in spec.shared]
    seen: set[int] = set()
    checked: dict[Any, type[nn.Module]] = {}  # the same call written on many lines is checked once
    for root in decls:
        for d in walk(root):
            if len(problems.items) >= Problems.CAP:
                break
            if not isinstance(d, Leaf) or id(d) in seen:
                continue
            seen.add(id(d))
            args = _call_key(d)
            call = None if args is None else (d.type_name, args)
            known = checked.get(call) if call is not None else None
            if known is not None:
                classes[id(d)] = known
                continue
            found = layers.resolve(d.type_name, allowed, d.pos, spec.block_names)
            if isinstance(found, Problem):
                problems.extend([found])  # Problems keeps one line per problem
                continue
            if found.__name__.startswith("Lazy"):
                problems.add(
                    d.pos, f"{found.__name__} has no shapes until its first forward pass", f"use {found.__name__[4:]} with explicit sizes"
                )
                continue
            bad = layers.check_args(found, d.args, dict(d.kwargs), d.pos)
            if bad is not None:
                problems.extend([bad])
                continue
            classes[id(d)] = found
            if call is not None:
                checked[call] = found
    problems.raise_if_any()
    return classes


def _param_paths(root: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    out: dict[str, tuple[nn.Module, str]] = {}
    for mpath, m in all_named_modules(root):
        for pname in m._parameters:
            if m._parameters[pname] is not None:
                out[f"{mpath}.{pname}" if mpath else pname] = (m, pname)
    return out


def _bind_ties(spec: ModelSpec, root: nn.Module) -> list[TieBinding]:
    if not spec.tie:
        return []
    problems = Problems()
    paths = _param_paths(root)
    bindings: list[TieBinding] = []
    for tie in spec.tie:
        ends = []
        for p in (tie.param, tie.to):
            if p not in paths:
                problems.add(
                    tie.pos,
                    f"tie: no parameter '{p}'",
                    did_you_mean(p, paths) or "parameter paths are as in named_parameters(), e.g. head.weight",
                )
            else:
                ends.append(paths[p])
        if len(ends) != 2:
            continue
        (owner, attr), (towner, tattr) = ends
        a, b = getattr(owner, attr), getattr(towner, tattr)
        if a.shape != b.shape:
            problems.add(
                tie.pos,
                f"tie: '{tie.param}' has shape {list(a.shape)} but '{tie.to}' has {list(b.shape)}",
                "tied parameters must have the same shape",
            )
            continue
        if a.dtype != b.dtype:
            problems.add(tie.pos, f"tie: '{tie.param}' is {a.dtype} but '{tie.to}' is {b.dtype}")
            continue
        bindings.append(TieBinding(tie, owner, attr, a, towner, tattr))
    problems.raise_if_any()
    for b in bindings:
        setattr(b.owner, b.attr, getattr(b.target_owner, b.target_attr))
    return bindings


def retie(bindings: list[TieBinding]) -> None:
    for b in bindings:
        target = getattr(b.target_owner, b.target_attr)
        setattr(b.owner, b.attr, target)
        if getattr(b.owner, b.attr) is not target:
            raise RuntimeError(f"tie {b.tie.param} -> {b.tie.to} did not hold after materialisation")


def plan_rules(root: nn.Module, scoped: Sequence[ScopedRule], allowed: dict[str, type[nn.Module]]) -> list[Planned]:
    """Resolve each rule's target, types and parameter names to (owner, name) pairs; check schemes fit."""
    spec_problems, cli_problems = Problems(), Problems()
    plan: list[Planned] = []
    for sr in scoped:
        problems = cli_problems if sr.cli else spec_problems
        rule = sr.rule
        types: list[type[nn.Module]] = []
        for tname in rule.types:
            found = layers.resolve(tname, allowed, rule.types_pos or rule.pos)
            if isinstance(found, Problem):
                problems.extend([found])
            else:
                types.append(found)
        if len(types) != len(rule.types):
            continue
        owners: list[tuple[str, nn.Module]] = []
        seen_owner: set[int] = set()
        matched_any = False
        for rel, m in sr.scope.named_modules(remove_duplicate=False):
            if not fnmatch.fnmatchcase(rel, rule.target):
                continue
            matched_any = True
            if id(m) in seen_owner:
                continue
            for sub_rel, sub in m.named_modules():
                if id(sub) in seen_owner:
                    continue
                seen_owner.add(id(sub))
                if types and not isinstance(sub, tuple(types)):
                    continue
                full = ".".join(x for x in (rel, sub_rel) if x)
                owners.append((full, sub))
        where = f" under '{sr.scope_path}'" if sr.scope_path else ""
        if not matched_any:
            paths = [p for p, _ in sr.scope.named_children()]
            problems.add(
                rule.pos,
                f"init target {rule.target!r} matches no module{where}",
                ("module paths here: " + ", ".join(paths[:8])) if paths else None,
            )
            continue
        for glob, steps in rule.params:
            targets: list[tuple[nn.Module, str]] = []
            seen_param: set[int] = set()
            misfits: dict[tuple[str, str | None], list[tuple[str, list[int]]]] = {}  # one error per kind
            for full, owner in owners:
                for pname, p in owner._parameters.items():
                    if p is None or not fnmatch.fnmatchcase(pname, glob) or id(p) in seen_param:
                        continue
                    seen_param.add(id(p))
                    try:
                        for step in steps:
                            check_step(step, p, owner, pname)
                    except SchemeError as exc:
                        label = f"{full}.{pname}" if full else pname
                        misfits.setdefault((exc.message, exc.hint), []).append((label, list(p.shape)))
                        continue
                    targets.append((owner, pname))
            for (message, hint), where_bad in misfits.items():
                (label, bad_shape), more = where_bad[0], len(where_bad) - 1
                also = f", and {more:,} more parameter{'s' if more > 1 else ''} like it" if more else ""
                problems.add(rule.pos, f"{message} ('{label}', shape {bad_shape}{also})", hint)
            if not targets:
                kinds = f" of types {', '.join(rule.types)}" if rule.types else ""
                problems.add(rule.pos, f"init rule: no parameter named {glob!r} in modules{kinds} matching {rule.target!r}{where}", None)
                continue
            plan.append(Planned(sr, glob, steps, targets))
    cli_problems.raise_if_any(UsageError)
    spec_problems.raise_if_any()
    return plan


def unique_modules(root: nn.Module) -> list[nn.Module]:
    """``root.modules()`` (each module once, pre-order) without its generator stack."""
    out: list[nn.Module] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        out.append(m)
        stack.extend(reversed([c for c in m._modules.values() if c is not None]))
    return out


def all_named_modules(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """``root.named_modules(remove_duplicate=False)`` as a list, without its recursive generators
    (a module reachable by several paths appears once per path)."""
    out: list[tuple[str, nn.Module]] = []
    stack: list[tuple[str, nn.Module]] = [("", root)]
    while stack:
        path, m = stack.pop()
        out.append((path, m))
        children = m._modules
        if children:
            prefix = path + "." if path else ""
            stack.extend(reversed([(prefix + name, c) for name, c in children.items() if c is not None]))
    return out


def unique_bytes(root: nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for m in unique_modules(root):
        for store in (m._parameters, m._buffers):
            for t in store.values():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
    return total


def _replayable(created: Sequence[nn.Module]) -> bool:
    """True when every module is a torch.nn class whose default init we can replay exactly."""
    for m in created:
        for sub in m.modules():
            if not type(sub).__module__.startswith("torch.nn"):
                return False
    return True


def build(
    spec: ModelSpec,
    *,
    device: torch.device | None = None,
    dtype: str | None = None,
    seed: int | None = None,
    allowed: dict[str, type[nn.Module]] | None = None,
    extra_rules: Sequence[Rule] = (),
    progress: Callable[[str, int, int], None] | None = None,
    need: str = "values",
) -> Built:
    """Build ``spec`` on the meta device, check it, then materialise on ``device`` (default cpu).

    ``need`` says how far to go once the device is known to hold the model: ``"values"`` (allocate,
    default init, rules), ``"storage"`` (allocate only: for commands that never read values), or
    ``"structure"`` (keep the meta tensors: for commands that show only the module structure).
    """
    allowed = allowed or {}
    device = device or torch.device("cpu")
    dtype_name = dtype or spec.dtype or "float32"
    tdtype = layers.DTYPES[dtype_name]
    seed_value = seed if seed is not None else (spec.seed if spec.seed is not None else 0)
    classes = resolve_classes(spec, allowed)

    def assemble(on: torch.device, quiet_init: bool) -> tuple[_Assembler, Built]:
        """Construct (as ``torch.set_default_dtype(dtype)`` would), tie, freeze and plan the rules."""
        problems = Problems()
        asm = _Assembler(spec, classes, problems, clone=on.type == "meta")
        ctx = no_init() if quiet_init else contextlib.nullcontext()
        saved = torch.get_default_dtype()
        torch.set_default_dtype(tdtype)
        try:
            with torch.device(on), ctx:
                root = asm.run()
        finally:
            torch.set_default_dtype(saved)
        problems.raise_if_any()
        assert root is not None
        ties = _bind_ties(spec, root)
        for m in asm.frozen:
            m.requires_grad_(False)
        scoped = [ScopedRule(r, root, "") for r in spec.init] + asm.scoped
        scoped += [ScopedRule(r, root, "", cli=True) for r in extra_rules]
        plan = plan_rules(root, scoped, allowed)
        return asm, Built(spec, root, device, tdtype, seed_value, asm.origin, ties, plan, {}, unique_bytes(root))

    asm, built = assemble(torch.device("meta"), True)
    if device.type == "meta":
        return built
    check_fits(built.bytes_needed, device)
    if need == "structure":
        return built
    try:
        return _realise(built, asm, need, progress, assemble, seed_value)
    except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not isinstance(exc, torch.cuda.OutOfMemoryError) and "alloc" not in str(exc):
            raise
        raise DeviceError.at(
            None, f"{device} ran out of memory while allocating the model: {str(exc).splitlines()[0][:160]}", "use --device meta"
        ) from None


def _realise(
    built: Built,
    asm: _Assembler,
    need: str,
    progress: Callable[[str, int, int], None] | None,
    assemble: Callable[[torch.device, bool], tuple[_Assembler, Built]],
    seed_value: int,
) -> Built:
    """Allocate (and, for values, initialise) a meta-built model on its device."""
    device = built.device
    if need == "storage":
        _materialise(built, asm, progress, init=False)
        return built
    if _replayable(asm.created):
        _materialise(built, asm, progress)
    else:
        # classes outside torch.nn may draw random numbers anywhere in __init__: construct for real
        torch.manual_seed(seed_value)
        asm, built = assemble(device, False)
    _apply_plan(built, progress)
    return built


def _covered(plan: Sequence[Planned]) -> set[tuple[int, str]]:
    """(owner id, name) of parameters whose first rule overwrites every value."""
    first: dict[tuple[int, str], bool] = {}
    for pl in plan:
        overwrites = pl.steps[0].name not in POST_OPS and pl.steps[0].name != "default"
        for owner, pname in pl.targets:
            first.setdefault((id(owner), pname), overwrites)
    return {k for k, v in first.items() if v}


def _materialise(built: Built, asm: _Assembler, progress: Callable[[str, int, int], None] | None, init: bool = True) -> None:
    root = built.module
    for b in built.ties:
        setattr(b.owner, b.attr, b.original)
    allocate([root, *asm.shared.values()], built.device)  # each module once, whichever root reaches it
    if not init:
        retie(built.ties)
        return
    total_numel = sum(p.numel() for p in root.parameters())
    covered = _covered(built.plan) if total_numel >= SKIP_DEFAULT_MIN_NUMEL else set()
    torch.manual_seed(built.seed)
    order = [sub for m in asm.created for sub in _postorder(m)]
    done: set[int] = set()
    with torch.no_grad():
        for i, sub in enumerate(order):
            if id(sub) in done:
                continue
            done.add(id(sub))
            own = [n for n, p in sub._parameters.items() if p is not None]
            if covered and own and not list(sub.buffers(recurse=False)) and all((id(sub), n) in covered for n in own):
                continue
            reset = getattr(sub, "reset_parameters", None) or getattr(sub, "_reset_parameters", None)
            if callable(reset):
                reset()
            if progress is not None:
                progress("materialise", i + 1, len(order))
    retie(built.ties)


def allocate(roots: Sequence[nn.Module], device: torch.device) -> None:
    """Give every parameter and buffer uninitialised storage on ``device`` (like ``to_empty``).

    Plain ``torch.empty`` per tensor: ``to_empty``'s ``empty_like`` of a meta tensor goes
    through torch's Python reference implementations, which cost a second to import.
    A Parameter reachable through several modules stays one Parameter.
    """
    memo: dict[int, torch.Tensor] = {}
    seen: set[int] = set()
    empty = torch.empty
    for root in roots:
        for m in unique_modules(root):
            if id(m) in seen:
                continue
            seen.add(id(m))
            for store, is_param in ((m._parameters, True), (m._buffers, False)):
                if not store:
                    continue
                for name, t in store.items():
                    if t is None:
                        continue
                    new = memo.get(id(t))
                    if new is None:
                        data = empty(t.shape, dtype=t.dtype, device=device)
                        new = nn.Parameter(data, t.requires_grad) if is_param else data
                        memo[id(t)] = new
                    store[name] = new  # type: ignore[assignment]
            if isinstance(m, nn.RNNBase):
                m._init_flat_weights()  # its cached list of weights, as RNNBase._apply (to_empty) does


def _apply_plan(built: Built, progress: Callable[[str, int, int], None] | None) -> None:
    applied = built.applied
    total = sum(len(pl.targets) for pl in built.plan)
    done = 0
    for pl in built.plan:
        for owner, pname in pl.targets:
            p = getattr(owner, pname)
            try:
                apply_steps(pl.steps, p, owner, pname)
            except SchemeError as exc:
                kind = UsageError if pl.srule.cli else SpecError
                raise kind.at(pl.srule.rule.pos, exc.message, exc.hint) from exc
            chain = applied.setdefault(id(p), [])
            if pl.steps[0].name not in POST_OPS:
                chain.clear()
            chain.extend(pl.steps)
            done += 1
            if progress is not None:
                progress("init", done, total)


def origin_of(built: Built, module: nn.Module) -> Pos | None:
    return built.origin.get(id(module))


__all__ = ["Built", "NetinspectError", "build", "no_init", "plan_rules", "resolve_classes"]
