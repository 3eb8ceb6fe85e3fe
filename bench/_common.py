"""Helpers shared by the benchmarks: interleaved A/B sampling, medians, ratios, and a plain-text report line.

Every benchmark compares Postroom against a reference measured in the same run, interleaved (A B A B ...), so that a
machine that speeds up or slows down during the run (other test suites, thermal limits) shifts both alike. Figures are
medians; the ratio is the median of the per-pair ratios, which is robust to a slow stretch hitting one pair.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass
class Paired:
    """Samples of a candidate (A) and its reference (B), taken in turns."""

    name: str
    unit: str
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    def add(self, a: float, b: float) -> None:
        self.a.append(a)
        self.b.append(b)

    @property
    def ratios(self) -> list[float]:
        return [x / y for x, y in zip(self.a, self.b, strict=True) if y]

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "unit": self.unit,
            "runs": len(self.a),
            "candidate_median": statistics.median(self.a),
            "reference_median": statistics.median(self.b),
            "ratio_median": statistics.median(self.ratios),
            "ratio_min": min(self.ratios),
            "ratio_max": max(self.ratios),
        }


def interleave(runs: int, candidate: Callable[[], float], reference: Callable[[], float]) -> list[tuple[float, float]]:
    """Run candidate and reference in turns, alternating which goes first, so neither always runs on a warmer
    machine."""
    pairs = []
    for i in range(runs):
        if i % 2 == 0:
            a = candidate()
            b = reference()
        else:
            b = reference()
            a = candidate()
        pairs.append((a, b))
    return pairs


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load:.2f}"
    )


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "µs":
        return f"{value:.0f} µs"
    return f"{value:.4g} {unit}"


def print_paired(p: Paired, *, higher_is_better: bool = False, target: float | None = None) -> None:
    s = p.summary()
    verdict = ""
    if target is not None:
        ok = s["ratio_median"] >= target if higher_is_better else s["ratio_median"] <= target
        verdict = f"  target {'≥' if higher_is_better else '≤'} {target}: {'met' if ok else 'MISSED'}"
    print(
        f"{p.name}: {fmt(s['candidate_median'], p.unit)} vs reference {fmt(s['reference_median'], p.unit)}"
        f"  → ratio {s['ratio_median']:.2f} (min {s['ratio_min']:.2f}, max {s['ratio_max']:.2f}, {s['runs']} pairs)"
        f"{verdict}"
    )


def save(name: str, payload: dict[str, object]) -> Path:
    """Keep the raw figures of the last run under bench/results/ (ignored by git) for the README and the cost model."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "argv": sys.argv, **payload}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
