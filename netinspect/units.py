"""How netinspect writes sizes (torch-free)."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    """``484 B``, ``1,000 B``, ``1.5 KiB``, ``128.5 GiB``: binary units, one decimal past bytes."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
