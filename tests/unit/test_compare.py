"""Unit tests for celery_parselog.compare: normalization, counts by logger, and comparing runs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from celery_parselog.compare import (
    NO_LOGGER,
    compare_runs,
    count_by_logger,
    normalize_line,
    parse_level_and_logger,
)
from celery_parselog.records import record_finished, record_started
from tests.unit.runs import BASE_TIME, final_entry, log_lines, pending_entry, stored_run

pytestmark = pytest.mark.django_db

A_ID = "11111111-2222-4333-8444-555555555555"
B_ID = "66666666-7777-4888-9999-aaaaaaaaaaaa"


@pytest.mark.parametrize(
    ("line", "normalized"),
    [
        (
            "2026-11-29T19:52:10.418Z INFO app: start",
            "<time> INFO app: start",
        ),
        ("2026-11-29 19:52:10,418 INFO app: start", "<time> INFO app: start"),
        ("at 2026-11-29T19:52:10.418+00:00 done", "at <time> done"),
        ("[19:52:10.418] tick", "[<time>] tick"),
        (
            "Task tests.parse[5c0b2f0e-1d2c-4b5a-9e8f-0123456789ab] succeeded in 0.0021s: {}",
            "Task tests.parse[<uuid>] succeeded in <duration>: {}",
        ),
        ("parsed 10 rows in 12ms", "parsed 10 rows in <duration>"),
        ("took 3 seconds", "took <duration>"),
        ("elapsed=0.25s", "elapsed=<duration>"),
        ("<Parser object at 0x7f3a2b1c9d00>", "<Parser object at <addr>>"),
        ("10 rows, 3 files, version 1.2", "10 rows, 3 files, version 1.2"),
    ],
)
def test_normalize_line_replaces_volatile_parts(line: str, normalized: str) -> None:
    """Timestamps, UUIDs, durations and addresses become placeholders; the rest is kept."""
    assert normalize_line(line) == normalized


def test_normalize_line_replaces_the_runs_task_ids_even_when_not_uuids() -> None:
    """The compared runs' own task ids become <task-id>, whatever their shape."""
    assert normalize_line("run parse-7-b of parse-7", ["parse-7", "parse-7-b"]) == (
        "run <task-id> of <task-id>"
    )


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("2026-11-29T19:52:10.418Z INFO e2eproj.task: parse start 7", ("INFO", "e2eproj.task")),
        ("2026-11-29T19:52:10.418Z WARNING root: progress", ("WARNING", "root")),
        ("ERROR parsers.csv: bad row", ("ERROR", "parsers.csv")),
        ("2026-11-29 19:52:10,418 [INFO] [worker] hello", ("INFO", "worker")),
        ("Traceback (most recent call last):", None),
        ('  File "x.py", line 3, in parse', None),
        ("-- log incomplete: worker lost --", None),
        (
            json.dumps({"ts": "t", "level": "ERROR", "logger": "parsers", "message": "m"}),
            ("ERROR", "parsers"),
        ),
        ('{"not a record": 1}', None),
        ("{broken json", None),
    ],
)
def test_parse_level_and_logger(line: str, parsed: tuple[str, str] | None) -> None:
    """Level then logger name is read from text lines and JSON lines; other lines give None."""
    assert parse_level_and_logger(line) == parsed


def test_count_by_logger_most_first_and_other_lines_apart() -> None:
    """Lines are counted per logger, most first; headerless lines under (no logger)."""
    lines = [
        "t INFO a: 1",
        "t INFO b: 1",
        "t WARNING b: 2",
        "Traceback (most recent call last):",
        "t ERROR b: 3",
    ]
    assert list(count_by_logger(lines).items()) == [("b", 3), ("a", 1), (NO_LOGGER, 1)]


def test_runs_differing_only_in_volatile_parts_are_identical() -> None:
    """Two runs whose logs differ only in times, ids and durations compare as identical."""
    messages = ["app|INFO|start {id}", "celery.app.trace|INFO|Task x[{id}] succeeded in 0.01s"]
    a = stored_run(log_lines(A_ID, messages), task_id=A_ID)
    b_text = log_lines(B_ID, messages, start=BASE_TIME + timedelta(days=1)).replace(
        "0.01s", "0.93s"
    )
    b = stored_run(b_text, task_id=B_ID, started=BASE_TIME + timedelta(days=1))
    comparison = compare_runs(a, b)
    assert comparison.identical
    assert comparison.diff == []
    assert comparison.notes == []


def test_differences_show_in_summary_counts_and_diff() -> None:
    """The summary marks what differs, counts come by level and logger, the diff shows lines."""
    a = stored_run(
        log_lines(A_ID, ["app|INFO|start", "parsers|WARNING|bad record 3", "app|INFO|done"]),
        task_id=A_ID,
        counts={"INFO": 2, "WARNING": 1},
    )
    b = stored_run(
        log_lines(B_ID, ["app|INFO|start", "parsers|ERROR|bad file", "app|INFO|done"]),
        task_id=B_ID,
        task_state="FAILURE",
        counts={"INFO": 2, "ERROR": 1},
    )
    comparison = compare_runs(a, b)
    rows = {row.label: row for row in comparison.rows}
    assert (rows["State"].a, rows["State"].b, rows["State"].differs) == (
        "succeeded",
        "failed",
        True,
    )
    assert not rows["Task"].differs
    assert rows["Duration"].a == "1.500 s"
    assert [(r.label, r.a, r.b) for r in comparison.level_rows] == [
        ("INFO", "2", "2"),
        ("WARNING", "1", "0"),
        ("ERROR", "0", "1"),
    ]
    assert [(r.label, r.a, r.b) for r in comparison.logger_rows] == [
        ("app", "2", "2"),
        ("parsers", "1", "1"),
    ]
    assert not comparison.identical
    assert comparison.diff[0].startswith(f"--- A: tests.parse[{A_ID}] attempt 1")
    assert comparison.diff[1].startswith(f"+++ B: tests.parse[{B_ID}] attempt 1")
    assert "-<time> WARNING parsers: bad record 3" in comparison.diff
    assert "+<time> ERROR parsers: bad file" in comparison.diff
    kinds = dict((line, kind) for kind, line in comparison.classified_diff)
    assert kinds["+<time> ERROR parsers: bad file"] == "add"
    assert kinds["-<time> WARNING parsers: bad record 3"] == "del"
    assert kinds[comparison.diff[0]] == "file"


def test_levels_come_from_the_text_when_the_row_has_no_counts() -> None:
    """A run without counts (a recovered one) gets its level counts from its text."""
    a = stored_run(log_lines(A_ID, ["app|INFO|x", "app|ERROR|y"]), task_id=A_ID, counts={})
    b = stored_run(log_lines(B_ID, ["app|INFO|x"]), task_id=B_ID, counts={})
    comparison = compare_runs(a, b)
    assert [(r.label, r.a, r.b) for r in comparison.level_rows] == [
        ("INFO", "1", "1"),
        ("ERROR", "1", "0"),
    ]


def test_a_long_diff_is_cut_with_a_note() -> None:
    """Past max_diff_lines the diff stops, and a note says how many lines were left out."""
    a = stored_run(log_lines(A_ID, [f"app|INFO|a {n}" for n in range(300)]), task_id=A_ID)
    b = stored_run(log_lines(B_ID, [f"app|INFO|b {n}" for n in range(300)]), task_id=B_ID)
    comparison = compare_runs(a, b, max_diff_lines=100)
    assert len(comparison.diff) == 100
    assert comparison.diff_cut
    full = compare_runs(a, b)
    left_out = len(full.diff) - 100
    assert f"{left_out:,} more diff lines are not shown" in comparison.notes[0]


def test_a_big_log_is_compared_within_the_byte_bound() -> None:
    """Only max_bytes of each log's text is read, and the notes say so."""
    lines = [f"app|INFO|row {n}" for n in range(5000)]
    a = stored_run(log_lines(A_ID, lines), task_id=A_ID)
    b = stored_run(log_lines(B_ID, [*lines[:-1], "app|INFO|changed"]), task_id=B_ID)
    comparison = compare_runs(a, b, max_bytes=10_000)
    assert comparison.a.text_truncated
    assert comparison.a.lines_read < 5000
    assert comparison.identical  # the changed last line lies past the bound
    assert any(
        "the diff reads only the first 9.8\xa0KB" in note and note.startswith("A:")
        for note in comparison.notes
    )
    assert any(row.label == "Lines in the diff" and "(cut)" in row.a for row in comparison.rows)
    # The kinds of message still count every line.
    assert any(row.label == "Lines" and row.a == "5,000" for row in comparison.rows)


def test_a_run_without_a_stored_log_gets_a_summary_but_no_diff() -> None:
    """A run whose upload failed is summarized; the diff is left out with a note."""
    a = stored_run(log_lines(A_ID, ["app|INFO|x"]), task_id=A_ID)
    record_started(
        pending_entry(B_ID), task_name="tests.parse", hostname="h", arguments={}, args=[], kwargs={}
    )
    b = record_finished(final_entry(B_ID, status="failed", error="S3 down"), first_error=None)
    assert b is not None
    comparison = compare_runs(a, b)
    assert comparison.diff == []
    assert not comparison.identical
    assert "B: the log is not stored (upload failed)." in comparison.notes
    assert "No diff: both logs must be stored and readable." in comparison.notes


def test_a_purged_log_is_reported() -> None:
    """A row whose object is gone is compared by summary, with a note."""
    a = stored_run(log_lines(A_ID, ["app|INFO|x"]), task_id=A_ID)
    b = stored_run(log_lines(B_ID, ["app|INFO|x"]), task_id=B_ID)
    from django.core.files.storage import storages

    storages["default"].delete(b.key)
    comparison = compare_runs(a, b)
    assert "B: the log is not in the storage." in comparison.notes
