"""Statistics flush cost vs table size: a 1,000-row WAL batch with 10k rows already in the table vs 1M rows.

Runs the table_stats plugin on the local engine (DataFusion over in-memory Arrow tables) in both modes:
`bucket=1h` (recompute the touched buckets) and whole-table (running state in the engine cache). Each mode
gets one warm-up flush (imports, schema cache, and for whole-table mode the one-off rebuild from the table,
reported separately), then timed flushes of fresh 1,000-row batches that continue the series. The figure is
the median plugin time per flush; the last line is the worse mode's ratio 1M / 10k (target <= 1.5).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.engine import LocalEngine

PLUGIN = "statistics/table_stats"
DEVICES = 10
STEP_NS = 60 * 10**9  # one reading per device per minute
T0 = 1_600_000_000_000_000_000
BATCH = 1_000
TIMED_FLUSHES = 7


def readings(first_row: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = np.arange(first_row, first_row + rows)
    return pd.DataFrame({
        "time": T0 + (index // DEVICES) * STEP_NS,
        "device": [f"dev{i % DEVICES}" for i in index],
        "location": "lab",
        "temperature": np.round(21 + rng.normal(0, 1.5, rows), 1),
        "humidity": np.round(40 + rng.normal(0, 5, rows), 1),
        "co2": np.round(rng.uniform(400, 900, rows)),
    })


def lines(frame: pd.DataFrame) -> list[str]:
    return [f"sensors,device={r.device},location={r.location} temperature={r.temperature!r},"
            f"humidity={r.humidity!r},co2={r.co2!r} {r.time}" for r in frame.itertuples(index=False)]


def measure(existing: int, args: dict[str, str]) -> tuple[float, float]:
    """(median seconds per timed flush, seconds of the warm-up flush)."""
    engine = LocalEngine()
    engine.restart()
    engine.load_frame("telemetry", "sensors", readings(0, existing, seed=1), tags=("device", "location"))
    next_row = existing
    warm = engine.run_writes(PLUGIN, "telemetry", lines(readings(next_row, BATCH, seed=2)), table="sensors",
                             args=args).raise_for_error()
    next_row += BATCH
    timings = []
    for flush in range(TIMED_FLUSHES):
        batch = lines(readings(next_row, BATCH, seed=3 + flush))
        next_row += BATCH
        run = engine.run_writes(PLUGIN, "telemetry", batch, table="sensors", args=args).raise_for_error()
        timings.append(run.seconds)
    engine.restart()
    return statistics.median(timings), warm.seconds


def merge_cost() -> float:
    """Seconds of the once-per-65,536-values merge of whole-table mode's recent values into 1M values."""
    sys.path.append(str(Path(__file__).resolve().parents[1] / "plugins"))
    from stacklib.stats import SortedValues

    values = SortedValues(np.random.default_rng(4).normal(size=1_000_000))
    values.add(np.random.default_rng(5).normal(size=SortedValues.MERGE_AT))
    started = time.perf_counter()
    values.add(np.random.default_rng(6).normal(size=1))
    return time.perf_counter() - started


def main() -> None:
    print(f"whole-table mode merges its recent values once per 65,536 values per field: "
          f"{merge_cost() * 1000:.1f} ms per field at 1M rows (amortized over ~65 flushes, not in the medians)")
    ratios = {}
    for label, args in (("bucket=1h", {"bucket": "1h"}), ("whole table", {})):
        started = time.perf_counter()
        small, small_warm = measure(10_000, args)
        large, large_warm = measure(1_000_000, args)
        ratios[label] = large / small
        print(f"{label:12s} flush of {BATCH} rows: {small * 1000:7.1f} ms with 10k rows, {large * 1000:7.1f} ms "
              f"with 1M rows (warm-up flush {small_warm:.2f} s / {large_warm:.2f} s; "
              f"bench {time.perf_counter() - started:.0f} s)")
    for label, ratio in ratios.items():
        print(f"{label:12s} ratio 1M/10k: {ratio:.2f}")
    worst = max(ratios, key=ratios.get)
    print(f"ratio 1M/10k rows per statistics flush (worst mode: {worst}): {ratios[worst]:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
