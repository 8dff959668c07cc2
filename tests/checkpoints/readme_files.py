"""The checkpoint files the README's "Checkpoints" section reads, made as its text says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file, save_model
from torch import nn


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def _tinylm(folder: Path, cli: Any) -> None:
    cli.run("init", "tinylm", "--save", folder / "tinylm.safetensors")


def _mlp_file(folder: Path, cli: Any) -> None:
    cli.run("init", "mlp", "--save", folder / "mlp.safetensors")


def _module(folder: Path, cli: Any) -> None:
    save_file({f"module.{k}": v for k, v in _mlp().state_dict().items()}, str(folder / "module.safetensors"))


def _tinylm_once(folder: Path, cli: Any) -> None:
    import reference_models as R

    torch.manual_seed(0)
    save_model(R.REFERENCES["tinylm"](), str(folder / "tinylm-once.safetensors"))


def _broken(folder: Path, cli: Any) -> None:
    _mlp_file(folder, cli)
    (folder / "broken.safetensors").write_bytes((folder / "mlp.safetensors").read_bytes()[:400])


def _block(folder: Path, cli: Any) -> None:
    """The graph example of the README's "Graphs" section, as the README shows it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```yaml\n# block.yaml\n") + len("```yaml\n")
    (folder / "block.yaml").write_text(readme[start : readme.index("```", start)], encoding="utf-8")


FILES: dict[str, Callable[[Path, Any], None]] = {
    "block.yaml": _block,
    "tinylm.safetensors": _tinylm,
    "mlp.safetensors": _mlp_file,
    "module.safetensors": _module,
    "tinylm-once.safetensors": _tinylm_once,
    "broken.safetensors": _broken,
}


def make_for(command: str, folder: Path, cli: Any) -> None:
    """Write the files that ``command`` names into ``folder``."""
    for name, make in FILES.items():
        if name in command.split():
            make(folder, cli)
