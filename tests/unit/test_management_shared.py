"""Unit tests for celery_parselog.management.shared: the pace of the commands' progress lines."""

from __future__ import annotations

from celery_parselog.management.shared import progress_due


def _printed(total: int, verbosity: int) -> list[int]:
    return [
        number
        for number in range(1, total + 1)
        if progress_due(number, total, verbosity=verbosity, all_up_to=20, every=50)
    ]


def test_a_short_batch_prints_every_line_at_the_default_verbosity() -> None:
    """Up to ``all_up_to`` items, each one gets its progress line at ``-v 1``."""
    assert _printed(20, verbosity=1) == list(range(1, 21))


def test_a_long_batch_prints_every_nth_line_at_the_default_verbosity() -> None:
    """Past ``all_up_to`` items, only every ``every``-th item gets a line at ``-v 1``."""
    assert _printed(120, verbosity=1) == [50, 100]


def test_verbosity_two_prints_every_line_and_zero_none() -> None:
    """``-v 2`` prints a line for each item of any batch; ``-v 0`` prints none."""
    assert _printed(120, verbosity=2) == list(range(1, 121))
    assert _printed(5, verbosity=0) == []
