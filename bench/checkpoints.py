"""netinspect on a LLaMA-2-70B-shaped sharded safetensors checkpoint, beside `python -c "import torch"`.

The checkpoint is made as sparse files in a temporary folder: Hugging Face's names and shapes (723
bfloat16 tensors, 137,953,296,384 bytes of data), 15 shards ``model-0000k-of-00015.safetensors`` and
``model.safetensors.index.json``; each shard is its header followed by a hole, so no disk is used.

Every case is a fresh process; the cases run interleaved in shuffled order for N rounds (default 5),
after one uncounted warm-up round. Printed: the median wall time, its ratio to the median of
``import torch``, the peak RSS, and the target. ``state-dict --key`` is also run under a driver that
counts the bytes the command reads (``rchar`` of /proc/self/io, after torch is imported).

Usage: python bench/checkpoints.py [--repeat N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SHARDS = 15
VOCAB, D, FFN, KV, LAYERS = 32000, 8192, 28672, 1024, 80


def llama70b_tensors() -> list[tuple[str, list[int]]]:
    """Hugging Face's LlamaForCausalLM state_dict for Llama-2-70b: names and shapes, in its order."""
    out: list[tuple[str, list[int]]] = [("model.embed_tokens.weight", [VOCAB, D])]
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.self_attn.q_proj.weight", [D, D]),
            (f"{p}.self_attn.k_proj.weight", [KV, D]),
            (f"{p}.self_attn.v_proj.weight", [KV, D]),
            (f"{p}.self_attn.o_proj.weight", [D, D]),
            (f"{p}.mlp.gate_proj.weight", [FFN, D]),
            (f"{p}.mlp.up_proj.weight", [FFN, D]),
            (f"{p}.mlp.down_proj.weight", [D, FFN]),
            (f"{p}.input_layernorm.weight", [D]),
            (f"{p}.post_attention_layernorm.weight", [D]),
        ]
    out += [("model.norm.weight", [D]), ("lm_head.weight", [VOCAB, D])]
    return out


def nbytes(shape: list[int]) -> int:
    n = 2  # bfloat16
    for d in shape:
        n *= d
    return n


def make_checkpoint(folder: Path) -> tuple[int, int]:
    """Write the sparse shards and the index; returns (tensors, bytes of tensor data)."""
    tensors = llama70b_tensors()
    total = sum(nbytes(s) for _, s in tensors)
    per_shard = total / SHARDS
    shards: list[list[tuple[str, list[int]]]] = [[] for _ in range(SHARDS)]
    done = 0
    for name, shape in tensors:  # fill shards in order, as save_pretrained does
        shards[min(int(done / per_shard), SHARDS - 1)].append((name, shape))
        done += nbytes(shape)
    weight_map: dict[str, str] = {}
    for k, members in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{SHARDS:05d}.safetensors"
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, shape in members:
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes(shape)]}
            offset += nbytes(shape)
            weight_map[name] = fname
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the writer pads the header to 8 bytes
        with open(folder / fname, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            f.truncate(8 + len(raw) + offset)  # a hole where the data would be
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return len(tensors), total


def netinspect() -> list[str]:
    script = Path(PY).parent / "netinspect"
    return [str(script)] if script.exists() else [PY, "-m", "netinspect"]


RCHAR_DRIVER = """
import sys
from netinspect.cli import app

def rchar():
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar"))

def command(argv):
    try:
        app(argv)
    except SystemExit:
        pass

folder, key, warm = sys.argv[1:]
command(["state-dict", folder, "--key", warm])  # imports done: what follows is the command's own reading
before = rchar()
command(["state-dict", folder, "--key", key])
sys.stderr.write(f"RCHAR {rchar() - before}\\n")
"""


def run(argv: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS KiB, exit code) of one fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the checkpoint here and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="llama70b-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        count, total = make_checkpoint(folder)
        used = sum(p.stat().st_blocks * 512 for p in folder.iterdir())
        print(f"checkpoint: {folder} · {count} tensors in {SHARDS} shards · {total:,} bytes of data · {used:,} bytes on disk")
        ni = netinspect()
        d = str(folder)
        cases: dict[str, tuple[list[str], float | None, int]] = {
            "import torch": ([PY, "-c", "import torch"], None, 0),
            "netinspect --help": ([*ni, "--help"], None, 0),
            "params --json DIR": ([*ni, "params", "--json", d], 0.15, 0),
            "tree DIR": ([*ni, "tree", d], 0.15, 0),
            "shared DIR": ([*ni, "shared", d], 0.15, 0),
            "validate DIR": ([*ni, "validate", d], 0.15, 0),
            "diff configs/llama-70b.yaml DIR": ([*ni, "diff", "configs/llama-70b.yaml", d], 1.0, -1),
        }
        samples: dict[str, list[tuple[float, int, int]]] = {k: [] for k in cases}
        for rnd in range(args.repeat + 1):
            order = list(cases)
            random.shuffle(order)
            for key in order:
                sample = run(cases[key][0])
                if rnd:  # round 0 warms the page cache and is not counted
                    samples[key].append(sample)
        base = statistics.median(s[0] for s in samples["import torch"])
        print(f"\n{args.repeat} interleaved rounds; import torch: median {base:.3f} s\n")
        print(f"{'case':34} {'median s':>9} {'× torch':>8} {'peak RSS MiB':>13} {'exit':>5}  target")
        failed = False
        for key, (_, target, rc) in cases.items():
            walls = [s[0] for s in samples[key]]
            med = statistics.median(walls)
            ratio = med / base
            rss = max(s[1] for s in samples[key]) / 1024
            codes = sorted({s[2] for s in samples[key]})
            ok = target is None or ratio <= target
            failed |= not ok or (rc >= 0 and codes != [rc])
            mark = "" if target is None else f"≤ {target:.2f}× {'ok' if ok else 'MISSED'}"
            print(f"{key:34} {med:9.3f} {ratio:8.2f} {rss:13.0f} {','.join(map(str, codes)):>5}  {mark}")
        key = "model.layers.0.self_attn.k_proj.weight"
        want = nbytes([KV, D])
        proc = subprocess.run([PY, "-c", RCHAR_DRIVER, d, key, "model.norm.weight"], cwd=ROOT, capture_output=True, text=True, check=False)
        read = int(next(x for x in proc.stderr.splitlines() if x.startswith("RCHAR")).split()[1])
        print(f"\nstate-dict DIR --key {key}: read {read:,} bytes; the tensor is {want:,} bytes ({read / want:.4f}×)")
        return 1 if failed or read > want + (1 << 20) else 0
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
