"""Unit tests for the parselog_show, parselog_diff and parselog_purge management commands."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from celery_parselog.models import TaskLog
from tests.unit.runs import (
    A_ID,
    B_ID,
    BASE_TIME,
    failed_run,
    log_lines,
    stored_run,
)

pytestmark = pytest.mark.django_db


def run_command(name: str, *args: Any, **options: Any) -> str:
    """Run a management command and return what it printed."""
    out = StringIO()
    call_command(name, *args, stdout=out, **options)
    return out.getvalue()


# -- parselog_show -------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_show_prints_the_log_decompressed(compress: bool) -> None:
    """parselog_show prints the stored log as text, gzip or plain."""
    text = log_lines(A_ID, ["app|INFO|héllo", "app|WARNING|done"])
    stored_run(text, task_id=A_ID, compress=compress)
    assert run_command("parselog_show", A_ID) == text


def test_show_picks_the_last_attempt_unless_told() -> None:
    """Without --attempt the last attempt is shown; --attempt picks another."""
    stored_run("first try\n", task_id=A_ID, attempt=1)
    stored_run("second try\n", task_id=A_ID, attempt=2)
    assert run_command("parselog_show", A_ID) == "second try\n"
    assert run_command("parselog_show", A_ID, "--attempt", "1") == "first try\n"


def test_show_unknown_task_or_attempt_is_an_error() -> None:
    """An unknown task id or attempt is a CommandError naming what exists."""
    stored_run("x\n", task_id=A_ID)
    with pytest.raises(CommandError, match=f"No run of task {B_ID} is recorded"):
        run_command("parselog_show", B_ID)
    with pytest.raises(CommandError, match=r"has no attempt 3; its recorded attempts are 1\."):
        run_command("parselog_show", A_ID, "--attempt", "3")


def test_show_a_log_that_is_not_stored_is_an_error() -> None:
    """A failed upload or a purged object is a CommandError saying why."""
    failed_run(A_ID, hostname="w1")
    with pytest.raises(CommandError, match=r"not stored \(upload failed: S3 down\).*w1"):
        run_command("parselog_show", A_ID)
    row = stored_run("x\n", task_id=B_ID)
    storages["default"].delete(row.key)
    with pytest.raises(CommandError, match="not in the storage"):
        run_command("parselog_show", B_ID)


def test_show_exits_non_zero_from_the_command_line() -> None:
    """Run as manage.py, an unknown id makes the command exit with a non-zero status."""
    from django.core.management import ManagementUtility

    utility = ManagementUtility(["manage.py", "parselog_show", "no-such-task"])
    with pytest.raises(SystemExit) as exited, mock.patch("sys.stderr", new=StringIO()) as err:
        utility.execute()
    assert exited.value.code != 0
    assert "No run of task no-such-task" in err.getvalue()


# -- parselog_diff -------------------------------------------------------------------


def test_diff_prints_summary_and_normalized_diff() -> None:
    """parselog_diff prints the summary with differences marked, then the diff."""
    stored_run(log_lines(A_ID, ["app|INFO|start", "parsers|WARNING|bad record 3"]), task_id=A_ID)
    stored_run(
        log_lines(B_ID, ["app|INFO|start", "parsers|ERROR|bad file"]),
        task_id=B_ID,
        task_state="FAILURE",
    )
    output = run_command("parselog_diff", A_ID, B_ID)
    lines = output.splitlines()
    assert any(
        line.startswith("* State") and "succeeded" in line and "failed" in line for line in lines
    )
    assert any(line.startswith("  Task ") for line in lines)
    assert "Lines by logger" in output
    assert "-<time> WARNING parsers: bad record 3" in lines
    assert "+<time> ERROR parsers: bad file" in lines


def test_diff_by_subject_compares_its_two_latest_runs() -> None:
    """--subject compares the subject's two latest runs, earlier one as A."""
    with override_settings(CELERY_PARSELOG_SUBJECT="{data_file_id}"):
        stored_run("oldest\n", started=BASE_TIME)
        stored_run("middle\n", task_id=A_ID, started=BASE_TIME + timedelta(hours=1))
        stored_run("newest\n", task_id=B_ID, started=BASE_TIME + timedelta(hours=2))
    output = run_command("parselog_diff", "--subject", "7")
    assert f"--- A: tests.parse[{A_ID}] attempt 1" in output
    assert "-middle" in output
    assert "+newest" in output
    assert "oldest" not in output


def test_diff_of_identical_runs_says_so() -> None:
    """Runs equal once normalized print a line saying so, and no diff."""
    stored_run(log_lines(A_ID, ["app|INFO|x {id}"]), task_id=A_ID)
    stored_run(log_lines(B_ID, ["app|INFO|x {id}"]), task_id=B_ID)
    output = run_command("parselog_diff", A_ID, B_ID)
    assert "The two logs are the same once normalized." in output
    assert "+++" not in output


def test_diff_attempts_of_one_task() -> None:
    """--attempt-a and --attempt-b compare two attempts of one task."""
    stored_run("try one\n", task_id=A_ID, attempt=1)
    stored_run("try two\n", task_id=A_ID, attempt=2)
    output = run_command("parselog_diff", A_ID, A_ID, "--attempt-a", "1", "--attempt-b", "2")
    assert "-try one" in output
    assert "+try two" in output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((), "Give two task ids"),
        ((A_ID,), "Give two task ids"),
        ((A_ID, B_ID, "--subject", "7"), "either two task ids or --subject"),
        ((A_ID, "no-such-task"), "No run of task no-such-task"),
        (("--subject", "nothing"), "Subject 'nothing' has 0 recorded runs"),
        (("--subject", "7"), "Subject '7' has 1 recorded run;"),
        ((A_ID, B_ID, "--context", "-1"), "--context must be 0 or more"),
    ],
)
def test_diff_bad_input_is_an_error(arguments: tuple[str, ...], message: str) -> None:
    """Wrong arguments and unknown runs are CommandErrors with a clear message."""
    with override_settings(CELERY_PARSELOG_SUBJECT="{data_file_id}"):
        stored_run("a\n", task_id=A_ID)
    stored_run("b\n", task_id=B_ID)
    with pytest.raises(CommandError, match=message):
        run_command("parselog_diff", *arguments)


# -- parselog_purge ------------------------------------------------------------------


@pytest.fixture
def aged() -> tuple[TaskLog, TaskLog, TaskLog]:
    """Runs started 40 and 35 days ago, and one started an hour ago."""
    now = timezone.now()
    old = stored_run("old\n", task_id=A_ID, started=now - timedelta(days=40))
    failed = failed_run(B_ID, started=now - timedelta(days=35), error="down")
    recent = stored_run("recent\n", started=now - timedelta(hours=1))
    return old, failed, recent


def test_purge_deletes_old_logs_and_rows_with_progress(aged: tuple[TaskLog, ...]) -> None:
    """Runs older than DAYS lose their stored log and row; newer ones stay."""
    old, failed, recent = aged
    output = run_command("parselog_purge", "--older-than", "30")
    assert "Deleting 2 runs started before" in output
    assert f"[1/2] {old.key}: log and row deleted" in output
    assert f"[2/2] {failed.key}: log and row deleted" in output
    assert "2 runs deleted, 0 failed." in output
    assert list(TaskLog.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not storages["default"].exists(old.key)
    assert storages["default"].exists(recent.key)


def test_purge_dry_run_deletes_nothing(aged: tuple[TaskLog, ...]) -> None:
    """--dry-run lists what would go and leaves logs and rows alone."""
    old, _, _ = aged
    output = run_command("parselog_purge", "--older-than", "30", "--dry-run")
    assert "Would delete 2 runs" in output
    assert "2 runs would be deleted, 0 failed." in output
    assert TaskLog.objects.count() == 3
    assert storages["default"].exists(old.key)


def test_purge_keeps_the_row_when_its_log_cannot_be_deleted(aged: tuple[TaskLog, ...]) -> None:
    """A storage error keeps that run's row for a later try, and the command fails."""
    old, _, _ = aged
    storage = storages["default"]
    with (
        mock.patch.object(storage, "delete", side_effect=OSError("read-only file system")),
        pytest.raises(CommandError, match="2 logs could not be deleted"),
    ):
        run_command("parselog_purge", "--older-than", "30")
    assert TaskLog.objects.count() == 3
    assert storage.exists(old.key)


@pytest.mark.parametrize("days", ["-1", "ten", "1.5"])
def test_purge_rejects_bad_days(days: str) -> None:
    """--older-than takes a whole, non-negative number of days."""
    with pytest.raises(CommandError, match="older-than"):
        run_command("parselog_purge", "--older-than", days)


def test_purge_requires_older_than() -> None:
    """Purging without --older-than is refused, so nothing is deleted by accident."""
    with pytest.raises(CommandError, match="--older-than"):
        run_command("parselog_purge")
