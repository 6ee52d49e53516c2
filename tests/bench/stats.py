"""Figures for benchmark reports."""

from __future__ import annotations

import statistics


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def report(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{label}: n={len(ms)} p50={statistics.median(ms):.1f} ms "
            f"p99={percentile(ms, 99):.1f} ms max={max(ms):.1f} ms")
