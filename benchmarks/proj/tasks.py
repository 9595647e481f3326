"""Tasks the benchmarks run in real workers and in-process.

``tiny``, ``interleave`` and ``spew`` know nothing of celery-parselog: they log
through module loggers, the root logger and ``print()``, and capture (when on) picks
their records up. The ``*_perrun`` and ``*_swap`` variants do the same work with the
home-made baselines of :mod:`benchmarks.baselines`: one upload through the project's
default storage, then one row saved with the log's address (a ``Parse`` row).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import shared_task

from benchmarks.baselines import GlobalHandlerSwap, Uploader, per_run_logger, storage_uploader
from celery_parselog.conf import DEFAULT_FORMAT

records = logging.getLogger("benchproj.records")
parsers = logging.getLogger("benchproj.parsers")

PAYLOAD = "id;name;amount;currency;booked;comment (12 fields, 3 empty, delimiter ';')"

_lock = threading.Lock()
_upload: Uploader | None = None
_swapper: GlobalHandlerSwap | None = None


def _state() -> Path:
    return Path(os.environ.get("BENCH_STATE_DIR", "/tmp/celery-parselog-bench"))


def _uploader() -> Uploader:
    """An uploader to the project's default storage, made on first use."""
    global _upload
    with _lock:
        if _upload is None:
            from django.core.files.storage import default_storage

            _upload = storage_uploader(default_storage)
        return _upload


def _saver(data_file_id: int) -> Callable[[str], None]:
    """Save one ``Parse`` row with the stored log's address: the design's one row write."""

    def save(uri: str) -> None:
        from benchmarks.proj.models import Parse

        Parse(data_file_id=data_file_id, logs_uri=uri).save()

    return save


def _swap() -> GlobalHandlerSwap:
    """The module-level swapped handler, attached to root on first use.

    Made lazily rather than at import so that workers of the other variants, which
    import this module too, do not carry the baseline's handler.
    """
    global _swapper
    with _lock:
        if _swapper is None:
            _swapper = GlobalHandlerSwap(_state() / "baseline", logging.Formatter(DEFAULT_FORMAT))
            _swapper.attach()
        return _swapper


def _formatter() -> logging.Formatter:
    return logging.Formatter(DEFAULT_FORMAT)


@shared_task
def ready() -> int:
    return os.getpid()


@shared_task
def gate(path: str, timeout: float = 300.0) -> bool:
    """Hold the worker until ``path`` exists, so a whole batch can be queued behind it."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _tiny_body(number: int, first: logging.Logger, second: logging.Logger) -> None:
    first.info("tiny task %d starts", number)
    first.info("tiny task %d read %d rows", number, 10)
    second.warning("tiny task %d skipped %d row", number, 1)


def _now() -> list[float]:
    """When a task started, by the clock and by the process's CPU time (both comparable
    between tasks of one worker process)."""
    return [time.perf_counter(), time.process_time()]


@shared_task
def tiny(number: int) -> list[float]:
    """A tiny task; returns when it started (see ``_now``)."""
    started = _now()
    _tiny_body(number, records, parsers)
    return started


@shared_task
def tiny_perrun(number: int) -> list[float]:
    started = _now()
    folder = _state() / "baseline"
    with per_run_logger(number, folder, _formatter(), _uploader(), _saver(number)) as (log, _):
        _tiny_body(number, log, log)
    return started


@shared_task
def tiny_swap(number: int) -> list[float]:
    started = _now()
    with _swap().run(number, _uploader(), _saver(number)):
        _tiny_body(number, records, parsers)
    return started


def _interleave_body(
    file_id: int,
    steps: int,
    pause: float,
    *,
    first: logging.Logger,
    second: logging.Logger,
    printing: bool,
) -> None:
    for step in range(steps):
        first.info("b5 file=%d step=%d src=logger", file_id, step)
        second.info("b5 file=%d step=%d src=root", file_id, step)
        if printing:
            print(f"b5 file={file_id} step={step} src=print")
        time.sleep(pause)


@shared_task
def interleave(file_id: int, steps: int, pause: float) -> dict[str, Any]:
    _interleave_body(
        file_id, steps, pause, first=records, second=logging.getLogger(), printing=True
    )
    return {"file": file_id, "key": None}


@shared_task
def interleave_perrun(file_id: int, steps: int, pause: float) -> dict[str, Any]:
    folder = _state() / "baseline"
    with per_run_logger(file_id, folder, _formatter(), _uploader(), _saver(file_id)) as (log, key):
        _interleave_body(file_id, steps, pause, first=log, second=log, printing=False)
    return {"file": file_id, "key": key}


@shared_task
def interleave_swap(file_id: int, steps: int, pause: float) -> dict[str, Any]:
    with _swap().run(file_id, _uploader(), _saver(file_id)) as key:
        _interleave_body(
            file_id, steps, pause, first=records, second=logging.getLogger(), printing=True
        )
    return {"file": file_id, "key": key}


@shared_task
def spew(count: int) -> int:
    """Log ``count`` records of equal length: the memory benchmark's big task."""
    for number in range(count):
        records.info("row %09d of file %d: %s", number, 7, PAYLOAD)
    return count
