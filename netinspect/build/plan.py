"""Init rules → a plan: each rule's target, types and parameter names resolved to (owner, name)
pairs, and each scheme checked against each parameter's shape before anything is drawn."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from netinspect import layers
from netinspect.errors import Pos, Problem, Problems, UsageError
from netinspect.schemes import POST_OPS, SchemeError, SchemeStep, check_step

from .assemble import ScopedRule


@dataclass(slots=True)
class Planned:
    """One rule's scheme for one parameter glob, resolved to (owner, name) pairs."""

    srule: ScopedRule
    param_glob: str
    steps: tuple[SchemeStep, ...]
    targets: list[tuple[nn.Module, str]]

    def overwrites(self) -> bool:
        """True when the scheme draws new values (not a post-operation, not ``default``)."""
        return self.steps[0].name not in POST_OPS and self.steps[0].name != "default"


def plan_rules(scoped: Sequence[ScopedRule], allowed: dict[str, type[nn.Module]]) -> list[Planned]:
    """Resolve each rule's target, types and parameter names to (owner, name) pairs; check schemes fit.
    Problems of command-line rules are usage errors (exit 2), those of files invalid input (exit 3)."""
    spec_problems, cli_problems = Problems(), Problems()
    plan: list[Planned] = []
    for sr in scoped:
        problems = cli_problems if sr.cli else spec_problems
        owners = _owners(sr, allowed, problems)
        if owners is None:
            continue
        where = f" under '{sr.scope_path}'" if sr.scope_path else ""
        rule = sr.rule
        for glob, steps in rule.params:
            targets = _targets(owners, glob, steps, rule.pos, problems)
            if not targets:
                kinds = f" of types {', '.join(rule.types)}" if rule.types else ""
                problems.add(rule.pos, f"init rule: no parameter named {glob!r} in modules{kinds} matching {rule.target!r}{where}", None)
                continue
            plan.append(Planned(sr, glob, steps, targets))
    cli_problems.raise_if_any(UsageError)
    spec_problems.raise_if_any()
    return plan


def _owners(sr: ScopedRule, allowed: dict[str, type[nn.Module]], problems: Problems) -> list[tuple[str, nn.Module]] | None:
    """(path, module) of each distinct module the rule covers: every match of its target glob and
    their subtrees (``net[0].apply(f)``), of its types; None after a reported problem."""
    rule = sr.rule
    types: list[type[nn.Module]] = []
    for tname in rule.types:
        found = layers.resolve(tname, allowed, rule.types_pos or rule.pos)
        if isinstance(found, Problem):
            problems.extend([found])
        else:
            types.append(found)
    if len(types) != len(rule.types):
        return None
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
            owners.append((".".join(x for x in (rel, sub_rel) if x), sub))
    if not matched_any:
        where = f" under '{sr.scope_path}'" if sr.scope_path else ""
        paths = [p for p, _ in sr.scope.named_children()]
        problems.add(
            rule.pos,
            f"init target {rule.target!r} matches no module{where}",
            ("module paths here: " + ", ".join(paths[:8])) if paths else None,
        )
        return None
    return owners


def _targets(
    owners: list[tuple[str, nn.Module]], glob: str, steps: tuple[SchemeStep, ...], pos: Pos, problems: Problems
) -> list[tuple[nn.Module, str]]:
    """The parameters named ``glob`` of ``owners`` that every step fits; one error per kind of misfit."""
    targets: list[tuple[nn.Module, str]] = []
    seen_param: set[int] = set()
    misfits: dict[tuple[str, str | None], list[tuple[str, list[int]]]] = {}
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
        problems.add(pos, f"{message} ('{label}', shape {bad_shape}{also})", hint)
    return targets
