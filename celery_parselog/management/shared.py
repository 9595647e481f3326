"""What more than one management command needs."""

from __future__ import annotations

from typing import Any

__all__ = ["result_backend"]


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
