"""Listings that never import torch: the init schemes and the built-in configs."""

from __future__ import annotations

import json
import sys

from netinspect import session

from .app import DebugOpt, JsonOpt, app, handled


@app.command()
@handled
def schemes(as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """The init schemes with their arguments (aliases: xavier, kaiming)."""
    from netinspect.schemes import ALIASES, SCHEMES

    if as_json:
        doc = {
            "schemes": [{"name": i.name, "signature": i.signature(), "kind": i.kind, "doc": i.doc} for i in SCHEMES.values()],
            "aliases": ALIASES,
        }
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    width = max(len(i.signature()) for i in SCHEMES.values())
    lines = [f"{i.signature().ljust(width)}  {i.doc}" for i in SCHEMES.values()]
    lines.append("")
    lines.append("aliases: " + ", ".join(f"{a} = {b}" for a, b in ALIASES.items()))
    sys.stdout.write("\n".join(lines) + "\n")


@app.command()
@handled
def configs(as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """The built-in model configs, usable by name (netinspect tree rgnet)."""
    from netinspect.spec import config_doc

    items = [(name, config_doc(path)) for name, path in session.config_names().items()]
    if as_json:
        sys.stdout.write(json.dumps({"configs": [{"name": n, "doc": d} for n, d in items]}) + "\n")
        return
    width = max((len(n) for n, _ in items), default=0)
    sys.stdout.write("".join(f"{n.ljust(width)}  {d}\n" for n, d in items))


@app.command()
@handled
def ops(as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """What a written forward may call: functions, tensor methods, attributes, constants, operators."""
    from netinspect.ops import listing

    doc = listing()
    if as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    lines = []
    for kind, names in doc.items():
        lines.append(f"{kind}:")
        lines.extend(_wrapped(names))
    lines.append("")
    lines.append("functions beyond these: --allow pkg.mod:func (then call func(...) or pkg.mod.func(...) in forward)")
    sys.stdout.write("\n".join(lines) + "\n")


def _wrapped(names: list[str], width: int = 100) -> list[str]:
    out, line = [], " "
    for name in names:
        if len(line) + len(name) + 1 > width:
            out.append(line)
            line = " "
        line += " " + name
    return [*out, line]
