"""The statistics definitions (stacklib.stats) against NumPy, including the incremental RunningStats."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine import PLUGIN_DIR

if str(PLUGIN_DIR) not in sys.path:
    sys.path.append(str(PLUGIN_DIR))  # as the plugins do: stacklib is imported from the plugin directory

from stacklib.stats import RunningStats, SortedValues, bucket_start, summarize

values_strategy = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32), min_size=1,
                           max_size=200)


def numpy_stats(values: np.ndarray) -> dict[str, float]:
    uniques, counts = np.unique(values, return_counts=True)
    return {"count": values.size, "min": values.min(), "max": values.max(), "mean": values.mean(),
            "median": np.median(values), "mode": uniques[np.argmax(counts)], "p95": np.percentile(values, 95)}


def check(stats, values) -> None:
    expected = numpy_stats(np.asarray(values, dtype=float))
    for name, value in expected.items():
        assert getattr(stats, name) == pytest.approx(value, rel=1e-9, abs=1e-9), name


@given(values_strategy)
@settings(max_examples=60, deadline=None)
def test_summarize_matches_numpy(values):
    check(summarize(np.asarray(values)), values)


@given(values_strategy, st.lists(values_strategy, max_size=4))
@settings(max_examples=60, deadline=None)
def test_running_stats_after_any_sequence_of_batches_match_numpy(first, later):
    running = RunningStats(first)
    everything = list(first)
    for batch in later:
        running.add(batch)
        everything.extend(batch)
    check(running.snapshot(), everything)


def test_non_finite_values_are_ignored_and_empty_input_has_no_stats():
    assert summarize(np.array([np.nan, np.inf])) is None
    assert RunningStats([]).snapshot() is None
    check(summarize(np.array([1.0, np.nan, 3.0, -np.inf])), [1.0, 3.0])
    running = RunningStats([1.0])
    assert running.add([float("nan"), 2.0]) == 1
    check(running.snapshot(), [1.0, 2.0])


def test_mode_prefers_the_smallest_value_on_a_tie():
    assert summarize(np.array([3.0, 1.0, 3.0, 1.0, 2.0])).mode == 1.0
    running = RunningStats([3.0, 3.0])
    running.add([1.0, 1.0])
    assert running.snapshot().mode == 1.0


def test_buckets_align_to_the_epoch_like_date_bin():
    hour = 3600 * 10**9
    assert bucket_start(5 * hour + 17, hour) == 5 * hour
    assert bucket_start(-1, hour) == -hour


class TinyChunks(SortedValues):
    MERGE_AT = 4  # forces frequent merges, equal values in both arrays


@given(st.lists(st.lists(st.integers(-5, 5).map(float), max_size=12), max_size=6))
@settings(max_examples=80, deadline=None)
def test_sorted_values_ranks_and_counts_across_merges(batches):
    values, everything = TinyChunks(), []
    for batch in batches:
        values.add(np.array(batch))
        everything.extend(batch)
    expected = sorted(everything)
    assert len(values) == len(expected)
    assert [values[rank] for rank in range(len(expected))] == expected
    assert values.array().tolist() == expected
    for value in range(-6, 7):
        assert values.count(float(value)) == expected.count(value)
