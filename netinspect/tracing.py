"""Events from inside a forward pass, for whoever is listening: each step of a graph module.

Module hooks see module calls but not ``out + identity`` or ``torch.cat`` written in a graph's
``forward``. A graph module, when someone listens, runs its forward step by step and reports
each step here (its output, and where in the forward text it was written). ``forward_pass.forward``
listens to show per-step shapes; the cost analysis listens to attribute and replay them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a graph module's forward: ``name`` is the step's name in the compiled graph
    (the variable it is bound to, made unique), ``op`` what it calls (``add``, ``torch.cat``,
    ``F.scaled_dot_product_attention``, ``.view``), ``line`` the 1-based line of the forward text
    and ``text`` that line, ``output`` what it returned."""

    module: Any
    name: str
    op: str
    line: int
    text: str
    output: Any


class Listener(Protocol):
    def on_step(self, step: Step) -> None: ...


_LISTENERS: list[Listener] = []


def active() -> bool:
    """True while someone listens (graph modules then run step by step)."""
    return bool(_LISTENERS)


def emit(step: Step) -> None:
    for listener in _LISTENERS:
        listener.on_step(step)


@contextlib.contextmanager
def listen(listener: Listener) -> Iterator[None]:
    """Send every step run inside the ``with`` block to ``listener``."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)
