"""What ``netinspect summary`` costs on a 70-billion-parameter architecture, beside ``import torch``.

Usage: python bench/costs.py [--repeat N] [--markdown]
       python bench/costs.py --write DIR   (write plain_llama.py and plain-llama-70b.yaml to DIR)

Every case is a fresh process; the cases run interleaved, N rounds (default 3) in a shuffled
order, and the table gives each case's median wall time and its ratio to the median of
``python -c "import torch"``:

- ``netinspect summary --device meta llama-70b --input 1,4096``: the command itself, on the
  built-in llama-70b config;
- the same command on a model file whose model is the plain-PyTorch decoder below, granted with
  ``--allow`` (the whole command: build on meta, analysis, the table);
- the engine on a plain-PyTorch LLaMA-2-70B-shaped decoder (80 layers, d 8192, grouped-query
  attention with 8 key/value heads, rotary embeddings, SwiGLU 28672, bfloat16), built on meta
  here: one forward and backward at batch 1 x 4096 tokens, with and without the module-call cache;
- the same figures the plain way: ``FlopCounterMode`` and ``saved_tensors_hooks`` around the
  forward and backward of the same model (what one would otherwise write).

Each script prints its figures; the benchmark checks that the engine's equal the plain ones.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODEL = r'''
import json, os, sys, time
import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        q, k = q * cos + rotate(q) * sin, k * cos + rotate(k) * sin
        k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
        v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(o.transpose(1, 2).reshape(b, t, d))


def rotate(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class MLP(nn.Module):
    def __init__(self, d, ffn):
        super().__init__()
        self.gate_proj = nn.Linear(d, ffn, bias=False)
        self.up_proj = nn.Linear(d, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads, kv_heads, ffn):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(d, eps=1e-5)
        self.self_attn = Attention(d, heads, kv_heads)
        self.post_attention_layernorm = nn.RMSNorm(d, eps=1e-5)
        self.mlp = MLP(d, ffn)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, vocab=32000, d=8192, layers=80, heads=64, kv_heads=8, ffn=28672):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([DecoderLayer(d, heads, kv_heads, ffn) for _ in range(layers)])
        self.norm = nn.RMSNorm(d, eps=1e-5)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.head_dim = d // heads

    def forward(self, ids):
        t = ids.shape[1]
        inv = 1.0 / (10000 ** (torch.arange(0, self.head_dim, 2, device=ids.device).float() / self.head_dim))
        angles = torch.outer(torch.arange(t, device=ids.device).float(), inv)
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos().to(self.norm.weight.dtype), emb.sin().to(self.norm.weight.dtype)
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x))


def build():
    """On meta, in bfloat16 (the default init runs on meta tensors: it allocates nothing)."""
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("meta"):
        model = Llama()
    torch.set_default_dtype(torch.float32)
    return model.train()
'''

ENGINE = (
    MODEL
    + r"""
from netinspect.analysis import analyse, without_heavy_imports

cache = sys.argv[1] == "cached"
with without_heavy_imports():  # what netinspect does around its meta work
    started = time.perf_counter()
    model = build()
    built = time.perf_counter()
    ids = torch.randint(0, 32000, (1, 4096), device="meta")
    costs = analyse(model, [ids], cache=cache)
    done = time.perf_counter()
print(json.dumps({"flops_forward": costs.flops_forward, "flops_backward": costs.flops_backward, "saved_bytes": costs.saved_bytes,
                  "replayed": costs.replayed, "heavy": sorted(m for m in ("torch._dynamo", "sympy") if m in sys.modules),
                  "build_s": round(built - started, 3), "analyse_s": round(done - built, 3)}))
sys.stdout.flush()
os._exit(0)  # as netinspect's entry point: no interpreter teardown
"""
)

PLAIN = (
    MODEL
    + r"""
from torch.utils.flop_counter import FlopCounterMode

model = build()
ids = torch.randint(0, 32000, (1, 4096), device="meta")
params = {t.untyped_storage()._cdata for t in model.parameters()}
saved, keep = {}, []

def pack(t):
    s = t.untyped_storage()
    keep.append(s)
    if s._cdata not in params:
        saved[s._cdata] = s.nbytes()
    return t

with FlopCounterMode(display=False) as counter:
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(ids)
    forward = counter.get_total_flops()
    out.sum().backward()
print(json.dumps({"flops_forward": forward, "flops_backward": counter.get_total_flops() - forward, "saved_bytes": sum(saved.values())}))
"""
)


def write_model(where: Path) -> None:
    """The plain decoder as a module netinspect can be granted (``--allow plain_llama:Llama``) and a model file using it."""
    (where / "plain_llama.py").write_text(MODEL.split("def build():")[0], encoding="utf-8")
    (where / "plain-llama-70b.yaml").write_text(
        "netinspect: 1\ndtype: bfloat16\ninput: {shape: [1, 4096], dtype: int64, high: 32000}\nmodel: Llama()\n", encoding="utf-8"
    )


def cases(work: Path) -> dict[str, list[str]]:
    """Each case's command line; the model file granted with --allow is in ``work``."""
    summary = [sys.executable, "-m", "netinspect", "summary", "--device", "meta"]
    return {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "netinspect summary --device meta llama-70b --input 1,4096": [*summary, "llama-70b", "--input", "1,4096", "--json"],
        "netinspect summary --device meta on it (--allow plain_llama:Llama)": [
            *summary,
            "--allow",
            "plain_llama:Llama",
            str(work / "plain-llama-70b.yaml"),
            "--json",
        ],
        "engine, plain-torch LLaMA-70B decoder, cached": [sys.executable, "-c", ENGINE, "cached"],
        "engine, plain-torch LLaMA-70B decoder, every layer run": [sys.executable, "-c", ENGINE, "uncached"],
        "plain torch: FlopCounterMode + saved_tensors_hooks": [sys.executable, "-c", PLAIN],
    }


def run(argv: list[str], work: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    return time.perf_counter() - start, r.returncode, r.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--write", type=Path, help="write the plain decoder and its model file to DIR, then stop")
    args = parser.parse_args()
    if args.write is not None:
        args.write.mkdir(parents=True, exist_ok=True)
        write_model(args.write)
        return 0
    work = Path(tempfile.mkdtemp(prefix="netinspect-costs-"))
    write_model(work)
    commands = cases(work)
    times: dict[str, list[float]] = {name: [] for name in commands}
    codes: dict[str, int] = {}
    outputs: dict[str, str] = {}
    try:
        for _ in range(args.repeat):
            order = list(commands)
            random.shuffle(order)
            for name in order:
                wall, code, out = run(commands[name], work)
                times[name].append(wall)
                codes[name] = code
                outputs[name] = out
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(times["python -c 'import torch'"])
    rows = []
    for name in commands:
        med = statistics.median(times[name])
        note = "" if codes[name] == 0 else f"exit {codes[name]}"
        rows.append((name, f"{med:.2f} s", f"{med / base:.2f}×", note))
    figures = {
        name: json.loads(outputs[name].strip().splitlines()[-1])
        for name in commands
        if codes[name] == 0 and outputs[name].strip().startswith("{")
    }
    engine = figures.get("engine, plain-torch LLaMA-70B decoder, cached", {})
    command = figures.get("netinspect summary --device meta on it (--allow plain_llama:Llama)", {})
    plain = figures.get("plain torch: FlopCounterMode + saved_tensors_hooks", {})
    keys = ("flops_forward", "flops_backward", "saved_bytes")
    same = bool(engine) and bool(plain) and all(engine[k] == plain[k] for k in keys)
    if command:
        t = command["totals"]
        same = same and [t["flops_forward"], t["flops_backward"], t["saved_activation_bytes"]] == [plain[k] for k in keys]
    if args.markdown:
        print("| case | median | × `import torch` | note |\n|---|---:|---:|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        width = max(len(r[0]) for r in rows)
        for r in rows:
            print(f"{r[0]:<{width}}  {r[1]:>8}  {r[2]:>7}  {r[3]}")
    print()
    print(f"python {sys.version.split()[0]}, {args.repeat} interleaved rounds, median of import torch {base:.2f} s")
    if engine:
        print("engine figures:", {k: engine[k] for k in (*keys, "replayed", "heavy")})
        for name in commands:
            if "engine" in name and name in figures:
                f = figures[name]
                print(f"  {name}: build {f['build_s']:.2f} s, analyse {f['analyse_s']:.2f} s = {f['analyse_s'] / base:.2f}× import torch")
    if plain:
        print("plain figures: ", plain)
    print("engine and summary --json == FlopCounterMode / saved_tensors_hooks:", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
