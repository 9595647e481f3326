"""Small statistics helpers: medians, spreads and the rotation that interleaves variants."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["geometric_mean", "median", "quartiles", "rotated"]

T = TypeVar("T")


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no values")
    return float(statistics.median(values))


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """The first and third quartile, or the single value twice when there is only one."""
    if len(values) < 2:
        return (float(values[0]), float(values[0]))
    first, _, third = statistics.quantiles(values, n=4, method="inclusive")
    return (float(first), float(third))


def geometric_mean(values: Sequence[float]) -> float:
    return float(statistics.geometric_mean(values))


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """``items`` started at ``shift``: each repetition runs the variants in another order,
    so no variant always runs first (cold) or right after an expensive one."""
    if not items:
        return []
    shift %= len(items)
    return [*items[shift:], *items[:shift]]
