"""Summaries of timing samples: medians and p90s, never means; timing a call.

Latency samples on a shared machine have a long right tail (a page fault, a
neighbour's build); the median says what a call usually costs and the p90
how bad the tail gets, and neither is dragged around by one outlier the way
a mean is.  Samples are kept in seconds and reported in milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile, interpolated between the two nearest samples."""
    ordered = sorted(samples)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Median, p90, p99, min and max in milliseconds, with the raw samples (for re-analysis).

    A p99 of fewer than a hundred samples interpolates between the largest
    ones: it is reported where a target is set as a p99 (membership).
    """
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "p90_ms": round(percentile(samples, 0.9) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
        "min_ms": round(min(samples) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
        "samples_ms": [round(s * 1000, 2) for s in samples],
    }


def ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> float:
    """Ratio of two summaries' medians: above 1 means the numerator is slower."""
    return round(numerator["median_ms"] / denominator["median_ms"], 2)


def timed_call(action: Callable[[], T]) -> tuple[float, T]:
    """Wall time of one call in seconds (perf_counter: monotonic, fine-grained), and its value."""
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def timed(action: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    return timed_call(action)[0]
