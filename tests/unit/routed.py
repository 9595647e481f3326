"""A stand-in for :class:`celery_parselog.run.Run` where a test routes a bare capture."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from typing import Any

from celery_parselog.capture import RunCapture


class Routed:
    """What the router needs of a run: a capture, a token, and a tick (which syncs)."""

    def __init__(
        self, capture: RunCapture, on_tick: Callable[[RunCapture], None] | None = None
    ) -> None:
        self.capture = capture
        self.token: Token[Any] | None = None
        self._on_tick = on_tick

    def tick(self, now: float) -> None:
        self.capture.sync()
        if self._on_tick is not None:
            self._on_tick(self.capture)


def read_wire(backend: Any, task_id: str) -> dict[str, Any] | None:
    """A task's latest ``parselog`` entry in its wire form, as clients see it."""
    from celery_parselog.metadata import read_entry

    entry = read_entry(backend, task_id)
    return entry.to_wire() if entry is not None else None
