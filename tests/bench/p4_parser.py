"""P4 (parser part): lines per second through the imapsync output parser. Goal ≥ 200,000."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from purelyops.imapsync_output import ImapsyncOutput

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imapsync"


def run(settings, slack, purelymail) -> None:
    lines = []
    for path in sorted(FIXTURES.glob("*.log")):
        lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True))
    lines = lines * 20
    rates = []
    for _ in range(7):
        output = ImapsyncOutput()
        feed = output.feed
        started = time.perf_counter()
        for line in lines:
            feed(line)
        rates.append(len(lines) / (time.perf_counter() - started))
    median = statistics.median(rates)
    print(f"P4 parser: {len(lines):,} real imapsync lines, median {median:,.0f} lines/s over {len(rates)} runs")
    print(f"P4 parser goal >= 200,000 lines/s: {'met' if median >= 200_000 else 'NOT met'}")
