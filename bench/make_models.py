"""Write the benchmark's model files under bench/models/ (deterministic; rerun after editing).

- deep100.yaml: 100 nested Sequentials with a Linear(4, 4) at the bottom.
- wide8000.yaml: a 2,000-cell repeat, each cell Linear+ReLU+LayerNorm+Linear (8,000 leaf
  modules, 10,001 modules with the cell containers and the root); in the last 500 cells the
  second Linear is one module shared through `ref:` (module reuse).

Usage: python bench/make_models.py [--check]   (--check: exit 1 if a file is out of date)
"""

from __future__ import annotations

import sys
from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"

DEPTH = 100
CELLS = 2000
SHARED_CELLS = 500


def deep(depth: int) -> str:
    # depth nested lists: the root list is the first Sequential, the innermost holds the Linear.
    body = "[" * depth + '"Linear(4, 4)"' + "]" * depth
    return (
        "netinspect: 1\n"
        f"name: deep{depth}\n"
        f'doc: "{depth} nested Sequentials with a Linear(4, 4) at the bottom (20 parameters)"\n'
        "input: [2, 4]\n"
        f"model: {body}\n"
    )


def wide(cells: int, shared_cells: int) -> str:
    plain = cells - shared_cells
    modules = cells * 5 + 2  # root + per cell (Sequential + 4 leaves) + the shared Linear
    return f"""netinspect: 1
name: wide{cells * 4}
doc: "{cells:,} cells of Linear+ReLU+LayerNorm+Linear ({modules - 1:,} modules by path); the last {shared_cells} cells reuse one Linear"
input: [2, 16]
vars:
  d: 16
shared:
  proj: Linear(d, d)
blocks:
  cell:
    body:
      - Linear(d, d)
      - ReLU
      - LayerNorm(d)
      - Linear(d, d)
  cell_shared:
    body:
      - Linear(d, d)
      - ReLU
      - LayerNorm(d)
      - ref: proj
model:
  - use: cell
    repeat: {plain}
    name: "cell{{i}}"
  - use: cell_shared
    repeat: {shared_cells}
    name: "shared{{i}}"
"""


def files() -> dict[str, str]:
    return {"deep100.yaml": deep(DEPTH), f"wide{CELLS * 4}.yaml": wide(CELLS, SHARED_CELLS)}


def main() -> int:
    check = "--check" in sys.argv[1:]
    MODELS.mkdir(exist_ok=True)
    stale = []
    for name, text in files().items():
        path = MODELS / name
        if path.exists() and path.read_text() == text:
            continue
        if check:
            stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python bench/make_models.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
