"""What more than one management command needs: the result backend, the pace of progress."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_due", "result_backend"]


def result_backend() -> Any:
    """The project's Celery result backend, to record where recovered or lost logs went.

    ``None`` when it cannot be had: the logs are stored and the rows marked even when
    the results cannot be told.
    """
    from celery import current_app

    try:
        return current_app.backend
    except Exception:  # noqa: BLE001 - logs are stored even when results cannot be told
        return None


def progress_due(number: int, total: int, *, verbosity: int, all_up_to: int, every: int) -> bool:
    """Whether the progress line of item ``number`` of ``total`` is printed.

    None at ``-v 0``; every one at ``-v 2``; at the default ``-v 1``, every one of a
    batch of at most ``all_up_to`` items and every ``every``-th of a larger one, so a
    long sweep shows it is moving without a line per item.
    """
    if verbosity < 1:
        return False
    return verbosity >= 2 or total <= all_up_to or number % every == 0
