"""Shared output for the benchmark suites: a ratio table on stdout and a JSON file in bench/results/."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    """One case: our figure and the anchor's, same unit; `higher_is_better` decides how to read the ratio."""

    case: str
    metric: str
    ours: float
    anchor: float
    anchor_name: str
    unit: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.ours / self.anchor if self.anchor else float("nan")


def print_table(title: str, rows: Sequence[Row]) -> None:
    print(title)
    header = ("case", "metric", "ours", "anchor", "anchor name", "ours/anchor")
    body = [
        (
            r.case,
            r.metric,
            f"{r.ours:,.2f} {r.unit}",
            f"{r.anchor:,.2f} {r.unit}",
            r.anchor_name,
            f"{r.ratio:.2f}x",
        )
        for r in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body, strict=False)]
    for line in (header, *body):
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))


def write_results(name: str, rows: Sequence[Row], extra: dict[str, Any] | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "suite": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": _cpus(), "platform": platform.platform()},
        "rows": [{**asdict(r), "ratio": r.ratio} for r in rows],
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))
