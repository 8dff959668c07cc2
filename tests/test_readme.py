"""The README's examples are real: every ``$ netinspect ...`` it shows prints what the README says."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TESTS, Cli

sys.path.insert(0, str(TESTS / "checkpoints"))
from readme_files import make_for  # noqa: E402  the checkpoint files of the "Checkpoints" section

README = (ROOT / "README.md").read_text(encoding="utf-8")

# The file that the exit-codes section validates, and the figure that depends on the machine.
BAD_YAML = "netinspect: 1\nmodel:\n  - Linaer(4, 8)\n  - ReLU\n  - Linear(8, 1, bais=True)\n"
CODES = {
    "validate bad.yaml": 3,
    "params llama-70b": 4,
    "diff mlp module.safetensors": 1,
    "diff tinylm tinylm-once.safetensors": 1,
    "validate broken.safetensors": 3,
}
AVAILABLE = int(19.3 * 2**30)  # "cpu has 19.3 GiB available" in the README


def examples() -> list[tuple[str, str]]:
    """(arguments, output) for each ``$ netinspect ARGS`` line of a fenced block, its output being
    the lines up to the next ``$`` line or the end of the block."""
    out: list[tuple[str, str]] = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", README, re.S | re.M):
        command: str | None = None
        lines: list[str] = []
        for line in [*block.splitlines(), "$ end"]:
            if line.startswith("$ "):
                if command is not None:
                    out.append((command, "\n".join(lines).strip("\n")))
                command = line[len("$ netinspect ") :] if line.startswith("$ netinspect") else None
                lines = []
            elif command is not None:
                lines.append(line)
    return out


EXAMPLES = examples()


def test_the_readme_shows_examples() -> None:
    shown = [c for c, _ in EXAMPLES]
    assert len(shown) >= 8 and {"tree rgnet", "params tied", "shared tinylm", "validate bad.yaml"} <= set(shown)


@pytest.mark.parametrize(("command", "expected"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_example(cli: Cli, command: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(BAD_YAML, encoding="utf-8")
    monkeypatch.setenv("NETINSPECT_AVAILABLE_BYTES", str(AVAILABLE))
    make_for(command, tmp_path, cli)
    result = cli.run(*shlex.split(command), code=CODES.get(command, 0))
    assert (result.stdout + result.stderr).strip("\n") == expected


def test_update_readme_examples(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update_golden: bool) -> None:
    """With --update-golden, rewrite every example's output in the README from a real run (then read
    the diff: the README must stay true, not merely match)."""
    if not update_golden:
        pytest.skip("only with --update-golden")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    monkeypatch.setenv("NETINSPECT_AVAILABLE_BYTES", str(AVAILABLE))
    for i, (command, expected) in enumerate(EXAMPLES):
        work = tmp_path / str(i)
        work.mkdir()
        monkeypatch.chdir(work)
        (work / "bad.yaml").write_text(BAD_YAML, encoding="utf-8")
        make_for(command, work, cli)
        result = cli.run(*shlex.split(command), code=CODES.get(command, 0))
        actual = (result.stdout + result.stderr).strip("\n")
        if actual != expected:
            old = f"$ netinspect {command}\n{expected}\n"
            assert text.count(old) == 1, f"cannot place the output of {command!r}"
            text = text.replace(old, f"$ netinspect {command}\n{actual}\n")
    (ROOT / "README.md").write_text(text, encoding="utf-8")
