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


def new_capture(
    spool_dir: Path,
    *,
    task_id: str = TASK_ID,
    task_name: str = TASK_NAME,
    attempt: int = 1,
    levelno: int = logging.INFO,
    fmt: str = FORMAT,
    compress_level: int = 0,
    allows_logger: Callable[[str], bool] = _every_logger,
    max_bytes: int = 0,
    redact: Callable[[str], str] | None = None,
) -> RunCapture:
    """A RunCapture as the receivers make one; it holds its spool file's lock until released."""
    return RunCapture(
        task_id=task_id,
        task_name=task_name,
        attempt=attempt,
        levelno=levelno,
        formatter=build_formatter(fmt, task_id=task_id, task_name=task_name),
        spool_dir=spool_dir,
        compress_level=compress_level,
        allows_logger=allows_logger,
        max_bytes=max_bytes,
        redact=redact,
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
