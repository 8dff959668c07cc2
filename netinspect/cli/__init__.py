"""The command line: parses flags, calls the rest, turns errors into messages and exit codes.

The only package that imports typer. torch is imported lazily, inside the commands that build a
model, so ``--help``, ``schemes``, ``configs`` and file errors never pay for it. ``app`` holds the
shared parts; each command module registers its commands on import, in ``--help`` order.
"""

from .app import app, main

# isort: off
from . import model  # noqa: F401  tree, params, state-dict, init, shared, forward, validate
from . import summary  # noqa: F401  summary
from . import export  # noqa: F401  code
from . import diff  # noqa: F401  diff
from . import listings  # noqa: F401  schemes, configs, ops
# isort: on

__all__ = ["app", "main"]
