"""Captures and log records for unit tests, made the way a worker makes them.

One builder, so a test names only what it is about (compression, level, a cap) and
every capture has the same, time-free line format unless the test asks for another.
"""

from __future__ import annotations

import gzip
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery_parselog.capture import RunCapture
from celery_parselog.formatting import build_formatter

__all__ = ["FORMAT", "TASK_ID", "TASK_NAME", "MakeCapture", "lines_of", "new_capture", "record"]

TASK_ID = "5b0c7f2e-9d1a-4c3b-8e7f-6a5b4c3d2e1f"
TASK_NAME = "tests.parse"
FORMAT = "%(levelname)s %(name)s: %(message)s"

MakeCapture = Callable[..., RunCapture]
"""The ``make_capture`` fixture: :func:`new_capture` in the test's spool folder."""


def _every_logger(name: str) -> bool:
    """A logger selection that allows every logger."""
    return True


_DEFAULTS: dict[str, Any] = {
    "attempt": 1,
    "levelno": logging.INFO,
    "compress_level": 0,
    "allows_logger": _every_logger,
}


def new_capture(
    spool_dir: Path,
    *,
    task_id: str = TASK_ID,
    task_name: str = TASK_NAME,
    fmt: str = FORMAT,
    **options: Any,
) -> RunCapture:
    """A RunCapture as the receivers make one; it holds its spool file's lock until released.

    ``options`` are RunCapture's own (``attempt``, ``levelno``, ``compress_level``,
    ``allows_logger``, ``max_bytes``, ``redact``); by default attempt 1, INFO and up,
    uncompressed, every logger, no cap and no redaction.
    """
    formatter = build_formatter(fmt, task_id=task_id, task_name=task_name)
    chosen = {**_DEFAULTS, **options}
    return RunCapture(
        task_id=task_id, task_name=task_name, formatter=formatter, spool_dir=spool_dir, **chosen
    )


def record(
    msg: str,
    args: tuple[object, ...] | None = None,
    *,
    level: int = logging.INFO,
    name: str = "tests.capture",
    exc_info: bool = False,
) -> logging.LogRecord:
    """A LogRecord as a logger would make it (with the current exception if asked)."""
    return logging.LogRecord(
        name, level, __file__, 1, msg, args, sys.exc_info() if exc_info else None
    )


def lines_of(capture: RunCapture) -> list[str]:
    """The lines of a finished capture's spool file, decompressed when it is gzip."""
    data = capture.path.read_bytes()
    if capture.compressed:
        data = gzip.decompress(data)
    return data.decode("utf-8").splitlines()
