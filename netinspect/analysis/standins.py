"""Run meta ops without importing ``torch._dynamo`` and ``sympy`` (about a second here) for nothing.

torch 2.x implements the meta kernels of most elementwise ops with Python reference kernels, and
the first of them imports three heavy modules that ops on concrete shapes never need:

- ``torch._dynamo``: the kernels are wrapped with ``torch._compile._disable_dynamo``, which on the
  first call imports dynamo only to build ``torch._dynamo.disable(fn)``, a wrapper that matters
  inside ``torch.compile`` and is a no-op outside it;
- ``sympy``: type promotion asks ``isinstance(x, sympy.Basic)`` of every argument;
- ``torch.fx.experimental.symbolic_shapes`` (which imports sympy): broadcasting and shape checks
  call its ``guard_or_false``, ``sym_eq``, ... which, on plain ints and bools, are one-liners.

While ``without_heavy_imports()`` is active, each of them that is not imported yet is a stand-in
in ``sys.modules`` that answers just those names, with the real functions' own code for concrete
values (copied branch for branch, assertions included): ``disable(fn, ...)`` is ``fn``; ``Basic``
is a class without instances (no sympy object can exist while sympy is not loaded, so every
``isinstance`` answer is the real one); the ``symbolic_shapes`` helpers handle ints and bools and
hand anything symbolic to the real function. Any other name, or a submodule, imports the real
module, and from then on the stand-in forwards everything to it (a module that kept a reference
to a stand-in keeps working). On exit the stand-ins leave ``sys.modules``, and the ``fn`` wrappers
handed out are removed from the functions that cached them, so that a later ``torch.compile``
builds real ones.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import operator
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: the attribute on which ``torch._compile._disable_dynamo`` caches the wrapper built for ``fn``
_DYNAMO_CACHE_ATTR = "__dynamo_disable"
_SHAPES = "torch.fx.experimental.symbolic_shapes"
_SYM = (torch.SymInt, torch.SymFloat, torch.SymBool)


class _StandIn(types.ModuleType):
    """A not-yet-imported module as far as a few names go; anything else is the real module (with
    ``lazy``, a proxy that imports it when used). The first stand-in of a group that has to import
    its real module retires the whole group, so that what that import imports is real too."""

    def __init__(self, name: str, fakes: dict[str, Any], *, package: bool, lazy: bool, group: list[_StandIn]) -> None:
        super().__init__(name)
        self._fakes = fakes
        self._package = package
        self._lazy = lazy
        self._group = group
        self._retired = False
        self._loaded: types.ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if not self._retired and not self.is_loaded():
            if attr in self._fakes:
                return self._fakes[attr]
            if attr == "__path__":
                if not self._package:
                    raise AttributeError(attr)  # a plain module ("from X import y" looks for submodules)
                # where its submodules are, without importing it: importing one imports it (_Finder)
                spec = importlib.machinery.PathFinder.find_spec(self.__name__.rpartition(".")[2], self._parent_path())
                return list(spec.submodule_search_locations or []) if spec is not None else []
            if self._lazy and not attr.startswith("__"):
                return _Lazy(self, attr)
        return getattr(self.load(), attr)

    def _parent_path(self) -> list[str] | None:
        parent = self.__name__.rpartition(".")[0]
        if not parent:
            return None
        return list(getattr(importlib.import_module(parent), "__path__", []))

    def is_loaded(self) -> bool:
        if self._loaded is not None:
            return True
        current = sys.modules.get(self.__name__)
        return current is not None and not isinstance(current, _StandIn)

    def retire(self) -> None:
        """Leave ``sys.modules`` (importing the name imports the real module from now on)."""
        self._retired = True
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]

    def load(self) -> types.ModuleType:
        """The real module, imported now if need be (the group retires first)."""
        if self._loaded is None:
            for s in self._group:
                s.retire()
            self._loaded = importlib.import_module(self.__name__)
        return self._loaded


class _Lazy:
    """A name of a stand-in module, resolved (importing the module) when it is used: called, read
    from, or subclassed. ``isinstance(x, name)`` is False while the module is not loaded (nothing
    can be an instance of its classes then) and the real answer after."""

    __slots__ = ("_owner", "_name")

    def __init__(self, owner: _StandIn, name: str) -> None:
        self._owner = owner
        self._name = name

    def _target(self) -> Any:
        return getattr(self._owner.load(), self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._target(), attr)

    def __instancecheck__(self, obj: Any) -> bool:
        return self._owner.is_loaded() and isinstance(obj, self._target())

    def __subclasscheck__(self, cls: type) -> bool:
        return self._owner.is_loaded() and issubclass(cls, self._target())

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self._target(),)


class _Existing(importlib.abc.Loader):
    """Loads a module that importing its package already loaded (so it is not run twice)."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.spec = getattr(module, "__spec__", None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        types.ModuleType.__setattr__(module, "__spec__", self.spec)  # its own spec back


class _Finder(importlib.abc.MetaPathFinder):
    """Importing a submodule of a stand-in package imports the real package first."""

    def __init__(self, packages: list[_StandIn]) -> None:
        self.packages = packages

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        for p in self.packages:
            if fullname.startswith(p.__name__ + ".") and not p.is_loaded() and not p._retired:
                p.load()
                existing = sys.modules.get(fullname)
                if existing is not None:
                    # the import system answers with the spec of a module that is already in
                    # sys.modules: make that one ours, so the module is taken as it is, not run again
                    spec = importlib.util.spec_from_loader(fullname, _Existing(existing))
                    types.ModuleType.__setattr__(existing, "__spec__", spec)  # past a module's own __setattr__
                    return spec
        return None


def _real(name: str) -> Callable[..., Any]:
    """The real ``symbolic_shapes`` function ``name`` (imports the module)."""
    module = sys.modules.get(_SHAPES)
    if isinstance(module, _StandIn):
        module = module.load()
    else:
        module = importlib.import_module(_SHAPES)
    fn: Callable[..., Any] = getattr(module, name)
    return fn


def _symbolic(x: Any) -> bool:
    if isinstance(x, _SYM):
        return True
    if isinstance(x, (tuple, list)):
        return any(_symbolic(i) for i in x)
    if isinstance(x, torch.Tensor):
        return any(isinstance(s, torch.SymInt) for s in (*x.shape, *x.stride())) or isinstance(x.storage_offset(), torch.SymInt)
    return False


# --- the symbolic_shapes helpers, for concrete values (the real code's concrete branches) -------


def expect_true(a: Any, skip: int = 0) -> bool:
    if isinstance(a, torch.SymBool):
        return bool(_real("expect_true")(a, skip + 1))
    if type(a) is not bool:
        raise AssertionError(f"Expected bool, got {a}")
    return a


def _guard_or(name: str, a: Any) -> bool:
    if isinstance(a, torch.SymBool):
        return bool(_real(name)(a))
    if not isinstance(a, bool):
        raise AssertionError(f"Expected bool, got {type(a)}")
    return a


def guard_or_false(a: Any) -> bool:
    return _guard_or("guard_or_false", a)


def guard_or_true(a: Any) -> bool:
    return _guard_or("guard_or_true", a)


def statically_known_true(x: Any) -> bool:
    return _guard_or("statically_known_true", x)


def guard_size_oblivious(expr: Any) -> bool:
    return _guard_or("guard_size_oblivious", expr)


def is_nested_int(s: Any) -> bool:
    return isinstance(s, torch.SymInt) and bool(s.node.is_nested_int())


def has_guarding_hint(a: Any) -> bool:
    if isinstance(a, _SYM):
        return bool(a.node.has_hint())
    return True


def guarding_hint_or_throw(a: Any) -> Any:
    from torch.fx.experimental.sym_node import SymNode

    if isinstance(a, (SymNode, torch.SymInt, torch.SymBool)):
        return _real("guarding_hint_or_throw")(a)
    if isinstance(a, bool):
        return a
    if type(a) is not int:
        raise AssertionError(f"Expected int, got {type(a)}")
    return a


def sym_and(x: Any, *others: Any) -> Any:
    for y in others:
        x = operator.and_(x, y)
    return x


def sym_or(x: Any, *others: Any) -> Any:
    for y in others:
        x = operator.or_(x, y)
    return x


def sym_eq(x: Any, y: Any) -> Any:
    if isinstance(x, (tuple, list)) and isinstance(y, (list, tuple)):
        if len(x) != len(y):
            return False
        return functools.reduce(operator.and_, map(sym_eq, x, y), True)
    if isinstance(x, (int, torch.SymInt)) and isinstance(y, (int, torch.SymInt)):
        return x == y
    raise AssertionError(f"unexpected sym_eq between {type(x)} {type(y)}")


def free_unbacked_symbols(x: Any) -> Any:
    if _symbolic(x):
        return _real("free_unbacked_symbols")(x)
    from torch.utils._ordered_set import OrderedSet

    return OrderedSet()


_SHAPE_FAKES: dict[str, Any] = {
    f.__name__: f
    for f in (
        expect_true,
        guard_or_false,
        guard_or_true,
        statically_known_true,
        guard_size_oblivious,
        is_nested_int,
        has_guarding_hint,
        guarding_hint_or_throw,
        sym_and,
        sym_or,
        sym_eq,
        free_unbacked_symbols,
    )
}


@contextlib.contextmanager
def without_heavy_imports() -> Iterator[None]:
    """Inside the block, torch's meta reference kernels run without importing ``torch._dynamo``,
    ``sympy`` or ``symbolic_shapes`` (each stand-in only where that module is not imported yet)."""
    handed_out: list[Callable[..., Any]] = []

    def disable(fn: Callable[..., Any] | None = None, recursive: bool = True, **kwargs: Any) -> Any:
        if fn is None:
            return lambda f: disable(f, recursive, **kwargs)
        handed_out.append(fn)
        return fn

    stand_ins: list[_StandIn] = []
    for name, fakes, package, lazy in (
        ("torch._dynamo", {"disable": disable}, True, False),
        ("sympy", {}, True, True),
        ("torch.utils._sympy.functions", {}, False, True),
        (_SHAPES, _SHAPE_FAKES, False, True),
    ):
        if name not in sys.modules:
            stand_ins.append(_StandIn(name, fakes, package=package, lazy=lazy, group=stand_ins))
    finder = _Finder([s for s in stand_ins if s._package])
    for s in stand_ins:
        sys.modules[s.__name__] = s
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for s in stand_ins:
            s.retire()
        for fn in handed_out:
            if getattr(fn, _DYNAMO_CACHE_ATTR, None) is fn:
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(fn, _DYNAMO_CACHE_ATTR)
