"""Unit tests for comparing runs: normalization, counts by logger, kinds of message, the
bounded diff, the compare page's scoping and ``parselog_diff --summary``."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin import AdminSite
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.urls import path

from celery_parselog.admin import TaskLogAdmin
from celery_parselog.compare import (
    NO_LOGGER,
    compare_runs,
    count_by_logger,
    normalize_line,
    parse_level_and_logger,
)
from celery_parselog.kinds import KindCounter, compare_kinds, counted, template_of
from celery_parselog.linediff import diff_lines
from celery_parselog.models import TaskLog
from celery_parselog.normalizing import Normalizer
from tests.unit.runs import (
    A_ID,
    B_ID,
    BASE_TIME,
    C_ID,
    failed_run,
    log_lines,
    stored_run,
)

pytestmark = pytest.mark.django_db


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
    b = failed_run(B_ID)
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


# -- kinds of message --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "template"),
    [
        (
            "2026-11-29T19:52:10.418Z WARNING parsers: bad record 3 in file 7: missing 'amount'",
            "<time> WARNING parsers: bad record <num> in file <num>: missing '<str>'",
        ),
        ("report 2021-06-30 for 06/30/2021", "report <date> for <date>"),
        ('reading "samples/7.csv" (12 columns)', 'reading "<str>" (<num> columns)'),
        ("Partial Hash Field Values: T2 202108", "Partial Hash Field Values: <id> <num>"),
        ("can't open file7, amount 1.5", "can't open <id>, amount <num>"),
        ("done in 0.25s at 0x7f3a2b1c", "done in <duration> at <addr>"),
        ("no digits, no quotes", "no digits, no quotes"),
    ],
)
def test_template_replaces_what_varies(line: str, template: str) -> None:
    """Numbers, ids, quoted values, dates and the diff's placeholders are replaced."""
    assert template_of(line) == template


def test_json_lines_are_grouped_by_level_logger_and_message() -> None:
    """A JSON line's keys are not values: its template is built from level, logger, message."""
    line = json.dumps({"ts": "t", "level": "ERROR", "logger": "db", "message": "row 5 failed"})
    assert template_of(line) == "ERROR db: row <num> failed"


def test_lines_of_one_kind_are_counted_together_with_their_first_example() -> None:
    """Lines differing only in what varies share a template; the first is its example."""
    counter = counted(
        [
            "t INFO app: record 1 of file 7",
            "t INFO app: record 22 of file 7",
            "t WARNING app: bad record 3333",
            "t INFO app: record 4444 of file 8",
        ]
    )
    kinds = {
        kind.template: (kind.count, kind.example, kind.level) for kind in counter.kinds.values()
    }
    assert kinds == {
        "t INFO app: record <num> of file <num>": (3, "t INFO app: record 1 of file 7", "INFO"),
        "t WARNING app: bad record <num>": (1, "t WARNING app: bad record 3333", "WARNING"),
    }


def test_a_chunk_cut_inside_a_line_still_counts_whole_lines() -> None:
    """Chunks are split anywhere; lines are counted whole, the last even without a newline."""
    counter = KindCounter(Normalizer())
    for piece in (b"t INFO a: one 1\nt INFO a: o", b"ne 2\nt INFO b: x"):
        counter.feed(piece)
    counter.finish()
    assert {k.template: k.count for k in counter.kinds.values()} == {
        "t INFO a: one <num>": 2,
        "t INFO b: x": 1,
    }


def test_the_summary_orders_errors_then_warnings_then_new_gone_and_changes() -> None:
    """ERROR and WARNING kinds first; within a level new in B, gone from B, biggest change."""
    a = counted(
        [
            *["t INFO app: steady"] * 5,
            *["t INFO app: shrinking"] * 9,
            "t INFO app: growing",
            "t INFO app: only in A",
            "t WARNING app: warned 1",
            "t ERROR app: failed 1",
        ]
    )
    b = counted(
        [
            *["t INFO app: steady"] * 5,
            "t INFO app: shrinking",
            *["t INFO app: growing"] * 3,
            "t INFO app: only in B",
            "t ERROR app: failed 1",
            "t ERROR app: failed 2",
            "t ERROR app: new error",
        ]
    )
    summary = compare_kinds(a, b)
    assert [(row.template, row.status, row.a, row.b) for row in summary.rows] == [
        ("t ERROR app: new error", "new", 0, 1),
        ("t ERROR app: failed <num>", "changed", 1, 2),
        ("t WARNING app: warned <num>", "gone", 1, 0),
        ("t INFO app: only in B", "new", 0, 1),
        ("t INFO app: only in A", "gone", 1, 0),
        ("t INFO app: shrinking", "changed", 9, 1),
        ("t INFO app: growing", "changed", 1, 3),
        ("t INFO app: steady", "same", 5, 5),
    ]


def test_kinds_past_the_cap_are_counted_as_not_grouped_and_said() -> None:
    """Memory is bounded: past the cap of templates, lines are folded and a note says so."""
    counter = KindCounter(Normalizer(), kinds_max=3)
    for word in ("alpha", "beta", "gamma", "delta", "epsilon"):
        counter.feed(f"t INFO app: {word}\nt INFO app: {word}\n".encode())
    counter.finish()
    assert len(counter.kinds) == 3
    assert counter.not_grouped == 4
    summary = compare_kinds(counter, counted(["t INFO app: alpha"]))
    assert any(
        note.startswith("A: 4 of 10 lines are not grouped (the log has more than 3 kinds")
        for note in summary.notes
    )


def test_compare_runs_summarizes_kinds_of_message_of_both_logs() -> None:
    """The comparison carries the kinds of message, with the runs' task ids normalized."""
    a = stored_run(
        log_lines(A_ID, ["app|INFO|run {id} row 1", "app|INFO|run {id} row 2"]), task_id=A_ID
    )
    b = stored_run(
        log_lines(B_ID, ["app|INFO|run {id} row 1", "parsers|ERROR|bad file 'x.csv'"]),
        task_id=B_ID,
    )
    rows = compare_runs(a, b).kinds.rows
    assert [(row.template, row.a, row.b) for row in rows] == [
        ("<time> ERROR parsers: bad file '<str>'", 0, 1),
        ("<time> INFO app: run <task-id> row <num>", 2, 1),
    ]
    assert rows[0].example.endswith("ERROR parsers: bad file 'x.csv'")


# -- the diff's bound --------------------------------------------------------------


def test_two_logs_with_nothing_in_common_are_diffed_without_aligning_them() -> None:
    """Long stretches with no line in common are shown removed then added, with a note."""
    a = stored_run(log_lines(A_ID, [f"app|INFO|a{n}x" for n in range(3000)]), task_id=A_ID)
    b = stored_run(log_lines(B_ID, [f"app|INFO|b{n}y" for n in range(3000)]), task_id=B_ID)
    comparison = compare_runs(a, b, max_diff_lines=10_000)
    assert sum(1 for line in comparison.diff if line.startswith("-<time>")) == 3000
    assert sum(1 for line in comparison.diff if line.startswith("+<time>")) == 3000
    assert any(
        "6,000 lines in long stretches with nothing in common" in n for n in comparison.notes
    )


def test_the_diff_matches_difflib_on_small_logs_and_aligns_long_ones_on_unique_lines() -> None:
    """Small inputs give difflib's own diff; long ones are anchored on lines unique to both."""
    import difflib

    a = [f"line {n}" for n in range(50)]
    b = [*a[:10], "inserted", *a[10:30], *a[31:]]
    ours = list(diff_lines(a, b).unified(a, b, context=3))
    theirs = list(difflib.unified_diff(a, b, lineterm="", n=3))[2:]
    assert ours == theirs
    long_a = [f"row {n}" for n in range(10_000)]
    long_b = [*long_a[:5000], "changed", *long_a[5001:]]
    found = diff_lines(long_a, long_b)
    assert found.unaligned == 0
    assert list(found.unified(long_a, long_b, context=0)) == [
        "@@ -5001 +5001 @@",
        "-row 5000",
        "+changed",
    ]


def test_the_diff_input_is_capped_in_lines_with_a_note() -> None:
    """Past max_input_lines per log the diff leaves lines out, and a note says how many."""
    a = stored_run(log_lines(A_ID, [f"app|INFO|r {n}" for n in range(50)]), task_id=A_ID)
    b = stored_run(log_lines(B_ID, [f"app|INFO|r {n}" for n in range(60)]), task_id=B_ID)
    comparison = compare_runs(a, b, max_input_lines=40)
    assert comparison.identical
    assert (
        "A: the diff compares the first 40 of the 50 lines read; the other 10 are left out of it."
        in comparison.notes
    )


# -- scoping in the admin ----------------------------------------------------------


class SucceededOnlyAdmin(TaskLogAdmin):
    """An admin that shows only succeeded runs, as a per-state scope would."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskLog]:
        rows: QuerySet[TaskLog] = super().get_queryset(request).filter(state="succeeded")
        return rows


class OwnRunsOnlyAdmin(TaskLogAdmin):
    """An admin that lets a viewer read only runs of subject 7, checked per object."""

    def has_view_permission(self, request: HttpRequest, obj: TaskLog | None = None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or obj.subject == "7")


_by_queryset = AdminSite(name="by_queryset")
_by_queryset.register(TaskLog, SucceededOnlyAdmin)
_by_object = AdminSite(name="by_object")
_by_object.register(TaskLog, OwnRunsOnlyAdmin)
urlpatterns = [
    path("admin/", admin.site.urls),
    path("by-queryset/", _by_queryset.urls),
    path("by-object/", _by_object.urls),
]


@pytest.fixture
def scoped_runs(settings: Any) -> tuple[TaskLog, TaskLog, Client]:
    """Run A (subject 7, succeeded) and B (subject 8, failed, with a secret line), a viewer."""
    settings.ROOT_URLCONF = __name__
    settings.CELERY_PARSELOG_SUBJECT = "{data_file_id}"
    a = stored_run(log_lines(A_ID, ["app|INFO|visible"]), task_id=A_ID)
    b = stored_run(
        log_lines(B_ID, ["app|ERROR|other scope's line"]),
        task_id=B_ID,
        task_state="FAILURE",
        subject_arguments={"data_file_id": 8},
    )
    user = User.objects.create_user("scoped", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="celery_parselog", codename="view_tasklog")
    )
    client = Client()
    client.force_login(user)
    return a, b, client


def test_compare_reads_runs_through_the_admins_queryset(
    scoped_runs: tuple[TaskLog, TaskLog, Client],
) -> None:
    """A run outside get_queryset's scope cannot be compared, so its log does not leak."""
    a, b, client = scoped_runs
    response = client.get(f"/by-queryset/celery_parselog/tasklog/compare/?a={a.pk}&b={b.pk}")
    assert response.status_code == 404
    assert b"other scope" not in response.content
    both_in_scope = client.get(f"/by-queryset/celery_parselog/tasklog/compare/?a={a.pk}&b={a.pk}")
    assert both_in_scope.status_code == 200


def test_compare_checks_the_view_permission_of_both_runs(
    scoped_runs: tuple[TaskLog, TaskLog, Client],
) -> None:
    """A run the admin's has_view_permission refuses is not compared: 403, nothing shown."""
    a, b, client = scoped_runs
    for query in (f"a={a.pk}&b={b.pk}", f"a={b.pk}&b={a.pk}"):
        response = client.get(f"/by-object/celery_parselog/tasklog/compare/?{query}")
        assert response.status_code == 403
        assert b"other scope" not in response.content


def test_the_previous_run_offered_is_one_the_scoped_admin_shows(
    scoped_runs: tuple[TaskLog, TaskLog, Client],
) -> None:
    """A run's page offers a comparison with the previous run of its subject only when the
    admin would show that run: a scoped admin must not link to a page that answers 404
    or 403."""
    _, hidden, client = scoped_runs
    later = stored_run(
        log_lines(C_ID, ["app|INFO|later"]),
        task_id=C_ID,
        subject_arguments={"data_file_id": 8},
        started=BASE_TIME + timedelta(hours=1),
    )
    assert TaskLog.objects.previous_of(later) == hidden
    marker = b"parselog-compare-previous"
    for site, shown in (("admin", True), ("by-queryset", False)):
        page = client.get(f"/{site}/celery_parselog/tasklog/{later.pk}/change/")
        assert page.status_code == 200
        assert (marker in page.content) is shown, site


def test_compare_page_shows_kinds_of_message_and_sizes_in_human_units(
    scoped_runs: tuple[TaskLog, TaskLog, Client],
) -> None:
    """The page has the kinds-of-message table and sizes written by filesizeformat."""
    a, b, client = scoped_runs
    response = client.get(f"/admin/celery_parselog/tasklog/compare/?a={a.pk}&b={b.pk}")
    page = response.content.decode()
    assert 'id="parselog-kinds"' in page
    assert "&lt;time&gt; ERROR app: other scope&#x27;s line" in page
    assert "new in B" in page
    assert a.bytes is not None
    assert filesizeformat(a.bytes) in page


# -- the command -------------------------------------------------------------------


def test_parselog_diff_summary_prints_the_kinds_of_message() -> None:
    """``parselog_diff --summary`` prints the kinds table with counts and an example."""
    stored_run(log_lines(A_ID, ["app|INFO|row 1", "app|INFO|row 2"]), task_id=A_ID)
    stored_run(log_lines(B_ID, ["app|INFO|row 1", "app|ERROR|bad file 7"]), task_id=B_ID)
    out = io.StringIO()
    call_command("parselog_diff", A_ID, B_ID, "--summary", stdout=out)
    text = out.getvalue()
    assert "Kinds of message (errors and warnings first)" in text
    lines = text.splitlines()
    error_row = next(
        n for n, line in enumerate(lines) if "<time> ERROR app: bad file <num>" in line
    )
    assert "new in B" in lines[error_row]
    assert lines[error_row + 1].strip().endswith("ERROR app: bad file 7")
    info_row = next(line for line in lines if "<time> INFO app: row <num>" in line)
    assert info_row.split()[:4] == ["INFO", "-1", "2", "1"]
    plain = io.StringIO()
    call_command("parselog_diff", A_ID, B_ID, stdout=plain)
    assert "Kinds of message" not in plain.getvalue()


def test_shapes_past_the_cache_are_still_grouped_until_the_work_cap() -> None:
    """Past the remembered shapes, lines are still grouped; past the work cap, folded and said."""
    counter = KindCounter(Normalizer(), shapes_max=2, worked_max=4)
    counter.feed(b"".join(f"t INFO app: item '{word}'\n".encode() for word in "abcdef"))
    counter.finish()
    assert {k.template: k.count for k in counter.kinds.values()} == {"t INFO app: item '<str>'": 4}
    assert counter.not_grouped == 2
    assert counter.why_not_grouped() == "more than 4 line shapes"
