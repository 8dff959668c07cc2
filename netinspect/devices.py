"""Devices: parse ``--device``, check it is there, and know how many bytes it can still hold."""

from __future__ import annotations

import os
import re

import torch

from .errors import DeviceError, UsageError
from .units import human_bytes

_DEVICE = re.compile(r"(cpu|meta|mps|cuda)(?::(\d+))?\Z")


def parse_device(text: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``meta``; absent devices are exit 4."""
    m = _DEVICE.match(text.strip().lower())
    if not m:
        raise UsageError.at(None, f"unknown device {text!r}", "one of cpu, cuda, cuda:N, mps, meta")
    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError.at(
                None,
                f"device {text!r} is not available: {why} (torch {torch.__version__})",
                "use --device cpu, or --device meta to inspect without allocating",
            )
        count = torch.cuda.device_count()
        i = int(index) if index is not None else torch.cuda.current_device()
        if i >= count:
            raise DeviceError.at(
                None, f"device {text!r} is not available: {count} CUDA device(s) visible", f"use cuda:0 .. cuda:{count - 1}"
            )
        return torch.device("cuda", i)
    if kind == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceError.at(None, "device 'mps' is not available on this machine", "use --device cpu, or --device meta")
        return torch.device("mps")
    return torch.device(kind)


def available_bytes(device: torch.device) -> int | None:
    """Bytes the device can still allocate (None where unknown)."""
    override = os.environ.get("NETINSPECT_AVAILABLE_BYTES")
    if override and override.isdigit():
        return int(override)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory()) - int(torch.mps.current_allocated_memory())
        except (AttributeError, RuntimeError):
            return None
    return None


def check_fits(needed: int, device: torch.device, what: str = "the model") -> None:
    """Refuse, before allocating, what the device cannot hold."""
    free = available_bytes(device)
    if free is not None and needed > free:
        of = " of parameters and buffers" if what == "the model" else ""
        raise DeviceError.at(
            None,
            f"{what} needs {human_bytes(needed)} ({needed:,} bytes){of}, but {device} has {human_bytes(free)} available",
            "inspect it without allocating: --device meta (or a smaller --dtype)",
        )
