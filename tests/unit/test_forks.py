"""Processes forked while a run is captured: a task's own multiprocessing pool, a pool child.

A forked process inherits the parent's context (the current run), the routing handler
and the run's open spool file. None of that may let it write into the parent's log.
"""

from __future__ import annotations

import gzip
import logging
import multiprocessing
from pathlib import Path

from celery_parselog.routing import CaptureRouter, LoggerSelection
from tests.unit.captures import new_capture
from tests.unit.routed import Routed

logger = logging.getLogger("tests.forks")


def _log_in_child(number: int) -> int:
    """A pool worker's job: log a lot, so a buffered gzip stream would have flushed."""
    for line in range(2_000):
        logger.info("child %d line %d %s", number, line, "x" * 40)
    return number


def test_task_forking_a_pool_keeps_its_own_log_whole(tmp_path: Path) -> None:
    """A task that runs a fork-based multiprocessing pool whose workers log: the task's gzip
    log stays readable and holds the task's own lines only."""
    logging.getLogger().setLevel(logging.INFO)
    selection = LoggerSelection(["*"])
    router = CaptureRouter(selection)
    capture = new_capture(
        tmp_path / "spool", fmt="%(message)s", compress_level=6, allows_logger=selection.allows
    )
    token = router.enter(Routed(capture))
    try:
        logger.info("before the pool")
        with multiprocessing.get_context("fork").Pool(2) as pool:
            assert sorted(pool.map(_log_in_child, range(4))) == [0, 1, 2, 3]
        logger.info("after the pool")
    finally:
        router.leave(token)
    capture.finish()
    text = gzip.decompress(capture.path.read_bytes()).decode()
    capture.release()
    assert text.splitlines() == ["before the pool", "after the pool"]
