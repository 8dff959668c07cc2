"""The plain-PyTorch scripts a user would otherwise write, one process per job (bench/run.py runs them).

Usage: python bench/plain.py MODEL JOB

MODEL: mlp, rgnet, tied (the D2L networks), llama-7b, llama-70b (built on the meta device),
       deep100, deep20 (nested Sequentials), wide8000 (2,000 cells, 500 of them reusing one
       Linear), gpt2-xl (1.56B parameters, head tied to wte).
JOB:   print          print(model)
       forward        one forward on a seeded input (writes BENCH {"forward_s": ...} on stderr)
       params         a named_parameters() loop printing name, shape, dtype
       torchinfo      torchinfo.summary(model) (with the model's input where it has one)
       init-uniform   build on cpu (PyTorch's default init), then uniform_(-0.1, 0.1) on every Parameter
       init-normal    the same with normal_(0, 0.02)
       flat-uniform   uniform_(-0.1, 0.1) on ONE flat float32 tensor of the model's unique parameter count
       flat-normal    the same with normal_(0, 0.02)

The init and flat jobs write one line ``BENCH {json}`` on stderr with their own timings.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()

import torch  # noqa: E402
from reference_nets import LLAMA, gpt2_xl, llama, resnet50  # noqa: E402  (beside this script)
from torch import nn  # noqa: E402

T_IMPORT = time.perf_counter() - T0
T_BUILT = T0

INPUTS = {"mlp": (2, 4), "rgnet": (2, 4), "tied": (2, 4), "deep100": (2, 4), "deep20": (2, 4), "wide8000": (2, 16)}


def block1() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())


def block2() -> nn.Module:
    net = nn.Sequential()
    for i in range(4):
        net.add_module(f"block{i}", block1())
    return net


def deep(depth: int) -> nn.Module:
    m: nn.Module = nn.Linear(4, 4)
    for _ in range(depth):
        m = nn.Sequential(m)
    return m


def wide(cells: int = 2000, shared_cells: int = 500) -> nn.Module:
    proj = nn.Linear(16, 16)
    model = nn.Sequential()
    for i in range(cells - shared_cells):
        model.add_module(f"cell{i}", nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.LayerNorm(16), nn.Linear(16, 16)))
    for i in range(shared_cells):
        model.add_module(f"shared{i}", nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.LayerNorm(16), proj))
    return model


def build(name: str) -> nn.Module:
    if name == "mlp":
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    if name == "rgnet":
        return nn.Sequential(block2(), nn.Linear(4, 1))
    if name == "tied":
        shared = nn.Linear(8, 8)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))
    if name in LLAMA:
        with torch.device("meta"):
            return llama(**LLAMA[name])
    if name.startswith("deep"):
        return deep(int(name[4:]))
    if name == "wide8000":
        return wide()
    if name == "gpt2-xl":
        return gpt2_xl()
    if name == "resnet50":
        torch.manual_seed(0)
        return resnet50()
    raise SystemExit(f"unknown model {name!r}")


def unique_numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields each Parameter once


def report(**fields: object) -> None:
    sys.stderr.write("BENCH " + json.dumps(fields) + "\n")
    sys.stderr.flush()


def init(name: str, kind: str) -> None:
    torch.manual_seed(0)
    t = time.perf_counter()
    model = build(name)
    t_build = time.perf_counter() - t
    params = list(model.parameters())
    numel = sum(p.numel() for p in params)
    t = time.perf_counter()
    with torch.no_grad():
        for p in params:
            if kind == "uniform":
                nn.init.uniform_(p, -0.1, 0.1)
            else:
                nn.init.normal_(p, 0.0, 0.02)
    t_init = time.perf_counter() - t
    report(import_s=T_IMPORT, build_s=t_build, init_s=t_init, numel=numel)


def flat(name: str, kind: str) -> None:
    with torch.device("meta"):
        numel = unique_numel(build(name))
    torch.manual_seed(0)
    t = time.perf_counter()
    x = torch.empty(numel, dtype=torch.float32)
    if kind == "uniform":
        x.uniform_(-0.1, 0.1)
    else:
        x.normal_(0.0, 0.02)
    t_fresh = time.perf_counter() - t  # allocation + first touch + RNG, as a model's fresh parameters
    t = time.perf_counter()
    if kind == "uniform":
        x.uniform_(-0.1, 0.1)
    else:
        x.normal_(0.0, 0.02)
    t_warm = time.perf_counter() - t  # RNG only (pages already touched)
    report(import_s=T_IMPORT, init_s=t_fresh, warm_s=t_warm, numel=numel)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    name, job = argv
    if job.startswith("init-"):
        init(name, job[5:])
        return 0
    if job.startswith("flat-"):
        flat(name, job[5:])
        return 0
    global T_BUILT
    model = build(name)
    T_BUILT = time.perf_counter()
    if job == "print":
        print(model)
    elif job == "params":
        for pname, p in model.named_parameters():
            print(pname, tuple(p.shape), p.dtype)
    elif job == "forward":  # one forward on a seeded input, after the build
        x = torch.rand(INPUTS.get(name, (1, 3, 224, 224)))
        t = time.perf_counter()
        out = model(x)
        forward_s = time.perf_counter() - t
        report(build_s=T_BUILT - T0 - T_IMPORT, forward_s=forward_s, work_s=T_BUILT - T0 - T_IMPORT + forward_s, out=list(out.shape))
        print(out)
    elif job == "torchinfo":
        try:
            from torchinfo import summary
        except ImportError:
            sys.stderr.write("torchinfo is not installed\n")
            return 5
        shape = INPUTS.get(name)
        depth = 200 if name.startswith("deep") else 3
        if shape is not None:
            print(summary(model, input_size=shape, depth=depth, verbose=0))
        else:
            print(summary(model, depth=depth, verbose=0))
    else:
        sys.stderr.write(f"unknown job {job!r}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
