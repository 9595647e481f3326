"""Checkpoints: a running capture's log so far, as a complete file, uploaded at an interval."""

from __future__ import annotations

import gzip
import logging
import time
from pathlib import Path

import pytest

from celery_parselog.capture import RunCapture
from celery_parselog.entry import RunEntry, Status
from celery_parselog.routing import CaptureRouter, LoggerSelection
from celery_parselog.run import CaptureConfig, Run
from tests.unit.captures import new_capture, record
from tests.unit.routed import Routed

logger = logging.getLogger("tests.checkpoint")


def make_run(spool_dir: Path, compress_level: int, selection: LoggerSelection) -> RunCapture:
    """A capture of one line per message that keeps what ``selection`` allows."""
    return new_capture(
        spool_dir, fmt="%(message)s", compress_level=compress_level, allows_logger=selection.allows
    )


@pytest.mark.parametrize("compress_level", [0, 6])
def test_snapshot_is_a_complete_file_of_the_lines_so_far(
    tmp_path: Path, compress_level: int
) -> None:
    """A snapshot reads back as the lines written so far (a valid gzip file when compressed),
    and the run goes on writing afterwards."""
    run = make_run(tmp_path / "spool", compress_level, LoggerSelection(["*"]))
    for number in range(1_000):
        run.emit(record(f"line {number}"))
    copy = tmp_path / "copy"
    covered = run.snapshot(copy)
    data = gzip.decompress(copy.read_bytes()) if compress_level else copy.read_bytes()
    assert data.decode().splitlines() == [f"line {n}" for n in range(1_000)]
    assert covered == len(data)
    run.emit(record("after the snapshot"))
    run.finish()
    final = run.path.read_bytes()
    text = gzip.decompress(final) if compress_level else final
    assert text.decode().splitlines()[-1] == "after the snapshot"
    assert run.snapshot(tmp_path / "late") is None
    run.release()


def test_watcher_uploads_checkpoints_at_the_interval_while_the_run_goes_on(
    tmp_path: Path,
) -> None:
    """The watcher ticks a running run while it goes on: with a checkpoint every 0.3 s, a
    run that lasts about a second is checkpointed several times, each time with what it
    had logged by then."""
    logger.setLevel(logging.INFO)  # restored by the autouse fixture
    seen: list[list[str]] = []

    last = [time.monotonic()]

    def upload(capture: RunCapture) -> None:
        if time.monotonic() - last[0] < 0.3:
            return
        last[0] = time.monotonic()
        copy = tmp_path / "checkpoint.log.gz"
        if capture.snapshot(copy) is not None:
            seen.append(gzip.decompress(copy.read_bytes()).decode().splitlines())

    selection = LoggerSelection(["*"])
    router = CaptureRouter(selection)
    run = make_run(tmp_path / "spool", 6, selection)
    token = router.enter(Routed(run, upload))
    try:
        for number in range(10):
            logger.info("step %d", number)
            time.sleep(0.1)
    finally:
        router.leave(token)
        run.release()
    assert len(seen) >= 2
    for lines in seen:
        assert lines == [f"step {n}" for n in range(len(lines))]
    assert len(seen[-1]) > len(seen[0])


def test_by_default_a_run_is_checkpointed_once_it_has_lasted_a_minute_then_each_minute(
    tmp_path: Path,
) -> None:
    """With the default settings, a run shorter than 60 s is never checkpointed; a longer
    one is at 60 s after its start, and every 60 s after that."""
    config = CaptureConfig.from_settings()
    assert config.checkpoint_seconds == 60
    capture = make_run(tmp_path / "spool", 6, LoggerSelection(["*"]))
    entry = RunEntry(
        status=Status.PENDING, uri="", storage="default", key="k.log.gz", attempt=1, task_id="c"
    )
    began = time.monotonic()
    run = Run(config, capture, entry, backend=None)
    taken: list[float] = []
    run.checkpoint = lambda: taken.append(1)  # type: ignore[method-assign]
    try:
        for offset in (0.2, 30.0, 59.0):
            run.tick(began + offset)
        assert taken == []
        for offset in (60.5, 61.0, 100.0, 121.0):
            run.tick(began + offset)
        assert len(taken) == 2
    finally:
        capture.finish()
        capture.release()
