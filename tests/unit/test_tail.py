"""A log past CELERY_PARSELOG_MAX_BYTES keeps its head and tail, with a marker between."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
from pathlib import Path

import pytest
from django.core.files.storage import storages

from celery_parselog.capture import RunCapture
from celery_parselog.recovery import recover_spool
from celery_parselog.spool import tail_paths, write_manifest
from tests.notes import CUT_MARKER, INCOMPLETE_TRAILER
from tests.unit.captures import lines_of, new_capture, record

MARKER = re.compile(
    r"^-- (\d+) records \((\d+) bytes\) left out here: "
    r"the log passed CELERY_PARSELOG_MAX_BYTES \((\d+) bytes\) --$"
)


def make_capture(spool_dir: Path, *, max_bytes: int, compress_level: int = 0) -> RunCapture:
    """A capture of task ``tail-task`` capped at ``max_bytes``, one line per message."""
    return new_capture(
        spool_dir,
        task_id="tail-task",
        fmt="%(message)s",
        compress_level=compress_level,
        max_bytes=max_bytes,
    )


def numbered(number: int) -> logging.LogRecord:
    """The record of line ``number``: ``record 000042``."""
    return record("record %06d", (number,))


@pytest.mark.parametrize("compress_level", [0, 6])
def test_capped_log_keeps_head_marker_and_tail(tmp_path: Path, compress_level: int) -> None:
    """Past the cap: the first records, one marker with exact counts, then the last records."""
    capture = make_capture(tmp_path, max_bytes=20_000, compress_level=compress_level)
    total = 10_000  # 14 bytes a line: 140,000 bytes, seven times the cap
    for number in range(total):
        capture.emit(numbered(number))
    capture.finish()
    lines = lines_of(capture)
    capture.release()

    marker_at = next(i for i, line in enumerate(lines) if line.startswith("-- "))
    head, marker, tail = lines[:marker_at], lines[marker_at], lines[marker_at + 1 :]
    assert head == [f"record {n:06d}" for n in range(len(head))]
    assert len(head) * 14 <= 10_000 < (len(head) + 1) * 14
    first_kept = total - len(tail)
    assert tail == [f"record {n:06d}" for n in range(first_kept, total)]
    match = MARKER.match(marker)
    assert match is not None, marker
    left_out = first_kept - len(head)
    assert (int(match[1]), int(match[2]), int(match[3])) == (left_out, left_out * 14, 20_000)
    assert 5_000 <= len(tail) * 14 <= 10_000
    assert capture.omitted == (left_out, left_out * 14)
    assert capture.counts == {"INFO": total}
    assert not any(path.exists() for path in tail_paths(capture.path))


def test_spool_stays_near_the_cap_while_writing(tmp_path: Path) -> None:
    """Head plus tail segments on disk never exceed the cap by more than one record."""
    capture = make_capture(tmp_path, max_bytes=20_000)
    largest = 0
    for number in range(5_000):
        capture.emit(numbered(number))
        on_disk = sum(
            p.stat().st_size for p in (capture.path, *tail_paths(capture.path)) if p.exists()
        )
        largest = max(largest, on_disk)
    capture.release()
    assert largest <= 20_000 + 14


def test_log_under_the_cap_is_untouched(tmp_path: Path) -> None:
    """A log below the cap gets no marker and no tail files."""
    capture = make_capture(tmp_path, max_bytes=20_000)
    for number in range(100):
        capture.emit(numbered(number))
    capture.finish()
    assert lines_of(capture) == [f"record {n:06d}" for n in range(100)]
    assert capture.omitted == (0, 0)
    assert not any(path.exists() for path in tail_paths(capture.path))
    capture.release()


def test_zero_means_no_cap(tmp_path: Path) -> None:
    """max_bytes=0 writes every record, however many."""
    capture = make_capture(tmp_path, max_bytes=0)
    for number in range(5_000):
        capture.emit(numbered(number))
    capture.finish()
    assert len(lines_of(capture)) == 5_000
    capture.release()


def _killed_mid_run(spool_dir: Path, key: str) -> None:
    """Runs in a forked child: write past the cap, then die without finishing."""
    capture = make_capture(spool_dir, max_bytes=20_000)
    write_manifest(
        capture.path,
        {"task_id": "tail-task", "attempt": 1, "key": key, "storage": "default"},
    )
    for number in range(5_000):
        capture.emit(numbered(number))
    os._exit(0)


def test_recovery_of_a_capped_killed_run_keeps_head_and_tail(tmp_path: Path) -> None:
    """A capped run killed mid-way is recovered as head, cut marker, tail and trailer."""
    key = "tests/tail/tail-task-1.log"
    child = multiprocessing.get_context("fork").Process(
        target=_killed_mid_run, args=(tmp_path, key)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    report = recover_spool(
        tmp_path,
        storage="default",
        attempts=1,
        backoff=0,
        key_template="tests/tail/{task_id}-{attempt}.log",
    )
    assert report.stored == [key]
    with storages["default"].open(key, "rb") as stored:
        lines = stored.read().decode().splitlines()
    storages["default"].delete(key)
    cut = lines.index(CUT_MARKER)
    assert lines[:cut] == [f"record {n:06d}" for n in range(cut)]
    assert lines[-1] == INCOMPLETE_TRAILER
    tail = lines[cut + 1 : -1]
    assert tail[-1] == "record 004999"
    assert tail == [f"record {n:06d}" for n in range(5_000 - len(tail), 5_000)]
    assert list(tmp_path.iterdir()) == []
