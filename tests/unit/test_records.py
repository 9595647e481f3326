"""Unit tests for celery_parselog.records, models and signals: TaskLog rows follow the entries."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, transaction
from django.test import override_settings

from celery_parselog import records
from celery_parselog.checks import check_settings
from celery_parselog.entry import Status
from celery_parselog.models import TaskLog
from celery_parselog.records import _safe_arguments, render_subject
from celery_parselog.signals import log_uploaded
from tests.unit.runs import (
    BASE_TIME,
    final_entry,
    new_id,
    pending_entry,
    record_finished,
    record_recovered,
    record_started,
)

pytestmark = pytest.mark.django_db

TASK_ID = "5c0b2f0e-1d2c-4b5a-9e8f-0123456789ab"
REPO = Path(__file__).resolve().parents[2]


def start(task_id: str = TASK_ID, *, attempt: int = 1, **arguments: Any) -> None:
    """Record the start of a run of ``tests.parse(data_file_id, reparse_id=None)``."""
    bound = {"data_file_id": 7, "reparse_id": None, **arguments}
    record_started(
        pending_entry(task_id, attempt=attempt),
        task_name="tests.parse",
        hostname="worker-1",
        arguments=bound,
        args=[bound["data_file_id"]],
        kwargs={"reparse_id": bound["reparse_id"]},
    )


@pytest.fixture
def uploaded() -> Iterator[list[dict[str, Any]]]:
    """Every log_uploaded sent during the test, as its keyword arguments."""
    sent: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        sent.append(kwargs)

    log_uploaded.connect(receiver, dispatch_uid="tests.uploaded")
    yield sent
    log_uploaded.disconnect(dispatch_uid="tests.uploaded")


# -- record_started ----------------------------------------------------------------


@override_settings(CELERY_PARSELOG_SUBJECT="file {data_file_id}/{reparse_id}")
def test_start_creates_a_running_row_with_its_subject_and_arguments() -> None:
    """A started run gets a running, pending row with the subject made from its parameters."""
    start(reparse_id=2)
    row = TaskLog.objects.get(task_id=TASK_ID, attempt=1)
    assert row.state == "running"
    assert row.upload_status == "pending"
    assert row.subject == "file 7/2"
    assert row.task_name == "tests.parse"
    assert row.hostname == "worker-1"
    assert row.args == [7]
    assert row.kwargs == {"reparse_id": 2}
    assert row.started == BASE_TIME
    assert row.key == f"parselog/tests.parse/{TASK_ID}-1.log.gz"
    assert row.storage == "default"
    assert row.finished is None
    assert row.complete is None


@pytest.mark.parametrize("template", [None, ""])
def test_subject_is_empty_without_a_template(template: str | None) -> None:
    """With SUBJECT None or empty, rows have an empty subject."""
    with override_settings(CELERY_PARSELOG_SUBJECT=template):
        start()
    assert TaskLog.objects.get().subject == ""


@override_settings(
    CELERY_PARSELOG_SUBJECT="{task_name}:{data_file_id}:{attempt}:{started:%Y-%m-%d}:{root_id}"
)
def test_subject_uses_the_same_fields_as_the_key() -> None:
    """The subject template sees task_name, attempt, started, root_id and the parameters."""
    start()
    assert TaskLog.objects.get().subject == f"tests.parse:7:1:2026-11-29:{TASK_ID}"


@override_settings(CELERY_PARSELOG_SUBJECT="{no_such_parameter}")
def test_subject_naming_a_missing_field_is_empty_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subject field the task lacks leaves the subject empty and logs why; the row is kept."""
    with caplog.at_level(logging.WARNING, logger="celery_parselog.records"):
        start()
    assert TaskLog.objects.get().subject == ""
    assert "no_such_parameter" in caplog.text


def test_render_subject_strips_control_characters_and_fits_the_column() -> None:
    """A subject loses control characters and is cut to the column's 255 characters."""
    assert render_subject("{name}", {"name": "a\nb\x00c"}) == "a b c"
    assert len(render_subject("{name}", {"name": "x" * 1000})) == 255
    assert TaskLog._meta.get_field("subject").max_length == 255  # type: ignore[union-attr]


@override_settings(CELERY_PARSELOG_KEEP_ARGS=False)
def test_keep_args_false_keeps_no_arguments() -> None:
    """With KEEP_ARGS off, the row's args and kwargs stay empty."""
    start()
    row = TaskLog.objects.get()
    assert row.args is None
    assert row.kwargs is None


def test_arguments_json_cannot_hold_are_kept_as_their_repr() -> None:
    """Values JSON cannot hold become their repr; JSON values are kept as they are."""

    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    args, kwargs = _safe_arguments(
        [1, "two", [3, {"four": 4.0}], None, b"raw", {1, 2}, math.nan, dt.date(2026, 1, 2)],
        {"path": Path("/data/x.csv"), "odd": Unprintable(), "big": "y" * 10_000},
    )
    assert args == [
        1,
        "two",
        [3, {"four": 4.0}],
        None,
        "b'raw'",
        "{1, 2}",
        "nan",
        "datetime.date(2026, 1, 2)",
    ]
    assert kwargs["path"] == repr(Path("/data/x.csv"))
    assert kwargs["odd"] == "<unrepresentable Unprintable>"
    assert len(kwargs["big"]) == 4096
    assert kwargs["big"].endswith("…")


def test_unjsonable_arguments_are_stored() -> None:
    """A run called with values JSON cannot hold still gets its row."""
    record_started(
        pending_entry(TASK_ID),
        task_name="tests.parse",
        hostname="h",
        arguments={"data_file_id": object()},
        args=[object()],
        kwargs={"when": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)},
    )
    row = TaskLog.objects.get()
    assert row.args[0].startswith("<object object at 0x")
    assert row.kwargs == {
        "when": "datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)"
    }


def test_a_redelivered_run_starts_its_row_afresh() -> None:
    """The same task id and attempt started again resets the finished row to running."""
    start()
    record_finished(final_entry(TASK_ID), first_error="boom")
    start()
    row = TaskLog.objects.get()
    assert row.state == "running"
    assert row.upload_status == "pending"
    assert row.first_error == ""
    assert row.bytes is None


# -- record_finished ---------------------------------------------------------------


def test_finish_completes_the_row_and_sends_log_uploaded(uploaded: list[dict[str, Any]]) -> None:
    """A stored final entry fills the row and sends log_uploaded with the saved row."""
    start()
    row = record_finished(final_entry(TASK_ID, seconds=2.25), first_error="ValueError: bad row")
    assert row is not None
    row.refresh_from_db()
    assert row.state == "succeeded"
    assert row.task_state == "SUCCESS"
    assert row.upload_status == "stored"
    assert row.duration == timedelta(seconds=2.25)
    assert row.finished == BASE_TIME + timedelta(seconds=2.25)
    assert row.bytes == 120
    assert row.sha256 == "ab" * 32
    assert row.counts == {"INFO": 3, "WARNING": 1}
    assert row.complete is True
    assert row.first_error == "ValueError: bad row"
    assert row.subject == ""
    assert len(uploaded) == 1
    assert uploaded[0]["sender"] is TaskLog
    assert uploaded[0]["task_log"].pk == row.pk
    assert uploaded[0]["task_log"].upload_status == "stored"


def test_failed_upload_is_recorded_without_a_signal(uploaded: list[dict[str, Any]]) -> None:
    """A failed upload marks the row failed with the error, and sends no log_uploaded."""
    start()
    entry = final_entry(TASK_ID, status="failed", error="could not store: S3 down")
    row = record_finished(entry, first_error=None)
    assert row is not None
    assert row.upload_status == "failed"
    assert row.upload_error == "could not store: S3 down"
    assert row.bytes is None
    assert uploaded == []


@pytest.mark.parametrize(
    ("task_state", "state"),
    [
        ("SUCCESS", "succeeded"),
        ("FAILURE", "failed"),
        ("RETRY", "retried"),
        ("REVOKED", "revoked"),
        ("IGNORED", "finished"),
        (None, "interrupted"),
    ],
)
def test_row_state_follows_celery_state(task_state: str | None, state: str) -> None:
    """Celery's state at postrun becomes the row's state; none at all means interrupted."""
    start()
    row = record_finished(final_entry(TASK_ID, task_state=task_state), first_error=None)
    assert row is not None
    assert row.state == state
    assert row.task_state == (task_state or "")


def test_finish_without_a_recorded_start_creates_the_row() -> None:
    """When the start was never recorded, the final entry creates the row."""
    row = record_finished(final_entry(TASK_ID, task_name="tests.parse"), first_error=None)
    assert row is not None
    assert TaskLog.objects.get().task_name == "tests.parse"
    assert row.started == BASE_TIME


def test_retries_get_a_row_each() -> None:
    """Each attempt of a task has its own row."""
    start(attempt=1)
    start(attempt=2)
    assert sorted(TaskLog.objects.values_list("attempt", flat=True)) == [1, 2]


# -- record_recovered --------------------------------------------------------------


def test_recovered_unfinished_run_is_lost_and_announced(uploaded: list[dict[str, Any]]) -> None:
    """Recovery of a run that never ended marks it lost, incomplete, and sends log_uploaded."""
    start()
    entry = pending_entry(TASK_ID)
    entry.update(
        status="stored",
        bytes=80,
        sha256="cd" * 32,
        complete=False,
        incomplete_reason="worker lost",
        recovered="2026-11-29T20:00:00.000+00:00",
    )
    row = record_recovered(entry)
    assert row is not None
    assert row.state == "lost"
    assert row.complete is False
    assert row.incomplete_reason == "worker lost"
    assert row.recovered == dt.datetime(2026, 11, 29, 20, 0, tzinfo=dt.timezone.utc)
    assert row.finished is None
    assert row.duration is None
    assert row.subject == TaskLog.objects.get().subject
    assert [sent["task_log"].pk for sent in uploaded] == [row.pk]


def test_recovered_finished_run_keeps_its_state() -> None:
    """A run that finished but whose upload failed is recovered with its own state."""
    start()
    record_finished(final_entry(TASK_ID, status="failed", error="down"), first_error="E")
    row = record_recovered(final_entry(TASK_ID, recovered="2026-11-29T20:00:00.000+00:00"))
    assert row is not None
    assert row.state == "succeeded"
    assert row.upload_status == "stored"
    assert row.upload_error == ""
    assert row.first_error == "E"


def test_recovered_run_without_a_row_gets_one() -> None:
    """Recovery creates the row when the run's start was never recorded."""
    entry = pending_entry(TASK_ID)
    entry.update(status="stored", complete=False, task_name="")
    row = record_recovered(entry)
    assert row is not None
    assert TaskLog.objects.get().state == "lost"


# -- never raising -----------------------------------------------------------------


@override_settings(CELERY_PARSELOG_RECORDS=False)
def test_records_off_writes_nothing(uploaded: list[dict[str, Any]]) -> None:
    """With RECORDS off, no row is written and no signal is sent."""
    start()
    assert record_finished(final_entry(TASK_ID), first_error=None) is None
    assert record_recovered(final_entry(TASK_ID)) is None
    assert not TaskLog.objects.exists()
    assert uploaded == []


def test_database_errors_are_logged_not_raised(
    caplog: pytest.LogCaptureFixture, uploaded: list[dict[str, Any]]
) -> None:
    """A database error in any of the three calls is logged and swallowed."""
    broken = mock.patch.object(
        TaskLog.objects, "update_or_create", side_effect=DatabaseError("db down")
    )
    with caplog.at_level(logging.ERROR, logger="celery_parselog.records"), broken:
        start()
    with (
        caplog.at_level(logging.ERROR, logger="celery_parselog.records"),
        mock.patch.object(TaskLog, "save", side_effect=DatabaseError("db down")),
    ):
        assert record_finished(final_entry(TASK_ID), first_error=None) is None
        assert record_recovered(final_entry(TASK_ID)) is None
    assert len(caplog.records) == 3
    assert all(r.exc_info and "db down" in str(r.exc_info[1]) for r in caplog.records)
    assert uploaded == []


def test_a_missing_table_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    """Without the table (migrations not run), the calls log and return."""
    with (
        mock.patch.object(TaskLog._meta, "db_table", "celery_parselog_not_migrated"),
        caplog.at_level(logging.ERROR, logger="celery_parselog.records"),
    ):
        start()
        assert record_finished(final_entry(TASK_ID), first_error=None) is None
    assert [r.getMessage().split(" ")[:3] for r in caplog.records] == [
        ["Could", "not", "record"]
    ] * 2
    assert "no such table" in caplog.text
    start()  # the connection is still usable afterwards
    assert TaskLog.objects.count() == 1


def test_a_setting_error_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    """An invalid records setting is logged, not raised into the task."""
    with (
        override_settings(CELERY_PARSELOG_RECORDS="yes"),
        caplog.at_level(logging.ERROR, logger="celery_parselog.records"),
    ):
        start()
        assert record_finished(final_entry(TASK_ID), first_error=None) is None
    assert "CELERY_PARSELOG_RECORDS" in caplog.text


def test_a_failing_receiver_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture, uploaded: list[dict[str, Any]]
) -> None:
    """A log_uploaded receiver that raises is logged; the row is returned, others are called."""

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    log_uploaded.connect(broken, dispatch_uid="tests.broken")
    try:
        with caplog.at_level(logging.ERROR, logger="celery_parselog.records"):
            row = record_finished(final_entry(TASK_ID), first_error=None)
    finally:
        log_uploaded.disconnect(dispatch_uid="tests.broken")
    assert row is not None
    assert len(uploaded) == 1
    assert "receiver bug" in caplog.text


@override_settings(USE_TZ=False, TIME_ZONE="UTC")
def test_times_are_stored_naive_without_use_tz() -> None:
    """Without USE_TZ, rows get naive times, as the database then requires."""
    start()
    row = record_finished(final_entry(TASK_ID), first_error=None)
    assert row is not None
    row.refresh_from_db()
    assert row.started == dt.datetime(2026, 11, 29, 19, 52, 10, 417000)
    assert row.duration == timedelta(seconds=1.5)


# -- the model ---------------------------------------------------------------------


def test_one_row_per_task_id_and_attempt() -> None:
    """The database refuses a second row for the same task id and attempt."""
    TaskLog.objects.create(task_id=TASK_ID, attempt=1, started=BASE_TIME)
    with pytest.raises(IntegrityError), transaction.atomic():
        TaskLog.objects.create(task_id=TASK_ID, attempt=1, started=BASE_TIME)


def test_the_literal_states_in_records_are_the_model_choices() -> None:
    """records.py's state and upload status names are exactly the model's choices."""
    assert set(records._STATES.values()) | {"lost", "interrupted", "finished", "running"} == set(
        TaskLog.State.values
    )
    assert set(TaskLog.UploadStatus.values) == {status.value for status in Status}


def test_migrations_match_the_model() -> None:
    """makemigrations finds nothing to add: the shipped migration is the model."""
    call_command("makemigrations", "celery_parselog", "--check", "--dry-run", verbosity=0)


def test_records_can_be_imported_before_django_is_set_up() -> None:
    """The receivers may import records.py while Django is still importing the apps."""
    code = (
        "import celery_parselog.records, django; django.setup(); "
        "from celery_parselog.models import TaskLog; print(TaskLog.__name__)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "TaskLog"


# -- settings checks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_value", "check_id"),
    [
        ({"CELERY_PARSELOG_SUBJECT": "{data_file_id"}, "celery_parselog.E010"),
        ({"CELERY_PARSELOG_SUBJECT": 7}, "celery_parselog.E008"),
        ({"CELERY_PARSELOG_RECORDS": "on"}, "celery_parselog.E008"),
        ({"CELERY_PARSELOG_KEEP_ARGS": 0}, "celery_parselog.E008"),
        ({"CELERY_PARSELOG_DOWNLOAD_EXPIRY": 0}, "celery_parselog.E008"),
        ({"CELERY_PARSELOG_PREVIEW_LINES": "50"}, "celery_parselog.E008"),
    ],
)
def test_checks_report_bad_record_settings(settings_value: dict[str, Any], check_id: str) -> None:
    """A bad records, subject, download or preview setting is a check error with its id."""
    with override_settings(**settings_value):
        found = check_settings()
    (key,) = settings_value
    assert [(m.id, m.obj) for m in found if isinstance(m, Error)] == [(check_id, key)]


def test_checks_accept_a_valid_subject() -> None:
    """A well-formed SUBJECT template gives no check error."""
    with override_settings(CELERY_PARSELOG_SUBJECT="{data_file_id}/{reparse_id}"):
        assert [m for m in check_settings() if m.is_serious()] == []


def test_recovery_tidies_old_connections_outside_transactions() -> None:
    """Recovery closes broken or expired connections first, but never inside a transaction."""
    with mock.patch.object(records, "close_old_connections") as tidy:
        assert record_recovered(final_entry(TASK_ID)) is not None  # inside the test's transaction
        assert not tidy.called
        with mock.patch.object(records, "_in_transaction", return_value=False):
            assert record_recovered(final_entry(TASK_ID)) is not None
        assert tidy.call_count == 1


# -- the background writer ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_background_writer_writes_a_short_run_as_one_insert(
    uploaded: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose start and end reach the writer together is written once, complete, and
    log_uploaded is sent with the saved row."""
    from celery_parselog.entry import RunEntry

    started_writes: list[str] = []
    monkeypatch.setattr(records, "_save_start", lambda entry, fields: started_writes.append(""))
    writer = records.RowWriter()
    start = RunEntry.from_wire({**pending_entry(TASK_ID), "task_name": "tests.parse"})
    fields = records.start_fields(
        start, hostname="worker-1", arguments={"data_file_id": 7}, args=[7], kwargs={}
    )
    assert fields is not None
    writer.started(start, fields)
    writer.finished(RunEntry.from_wire({**final_entry(TASK_ID), "task_name": "tests.parse"}), "E")
    writer.start()
    assert writer.flush(10)
    assert started_writes == []
    row = TaskLog.objects.get(task_id=TASK_ID)
    assert (row.hostname, row.state, row.upload_status, row.first_error) == (
        "worker-1",
        "succeeded",
        "stored",
        "E",
    )
    assert [sent["task_log"].pk for sent in uploaded] == [row.pk]


@pytest.mark.django_db(transaction=True)
def test_background_writer_holds_a_start_for_an_end_that_follows_soon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A running writer holds a start briefly: a run that ends within the hold is written
    as one INSERT, while a run that goes on past it is shown running meanwhile."""
    from celery_parselog.entry import RunEntry

    saved_starts: list[str] = []
    save_start = records._save_start

    def counting(entry: RunEntry, fields: Any) -> None:
        saved_starts.append(entry.task_id)
        save_start(entry, fields)

    monkeypatch.setattr(records, "_save_start", counting)
    # Longer than any stall of a busy machine between the two calls below.
    monkeypatch.setattr(records, "HOLD_START", 2.0)
    records.write_rows_in_background()
    try:
        short, long = TASK_ID, "6d1c3f1f-2e3d-4c6b-8f9a-1234567890bc"
        for task_id in (short, long):
            entry = RunEntry.from_wire({**pending_entry(task_id), "task_name": "tests.parse"})
            records.record_started(entry, hostname="worker-1", arguments={}, args=[], kwargs={})
        records.record_finished(
            RunEntry.from_wire({**final_entry(short), "task_name": "tests.parse"}),
            first_error=None,
        )
        assert records.flush_rows(10)
        assert saved_starts == [long]
        assert TaskLog.objects.get(task_id=short).state == "succeeded"
        assert TaskLog.objects.get(task_id=long).state == "running"
    finally:
        records.write_rows_in_background(False)


@pytest.mark.django_db(transaction=True)
def test_background_writer_shows_a_running_run_before_it_ends() -> None:
    """A start that reaches the writer alone is written at once: the admin sees the run."""
    from celery_parselog.entry import RunEntry

    records.write_rows_in_background()
    try:
        entry = RunEntry.from_wire({**pending_entry(TASK_ID), "task_name": "tests.parse"})
        records.record_started(entry, hostname="worker-1", arguments={}, args=[], kwargs={})
        assert records.flush_rows(10)
        assert TaskLog.objects.get(task_id=TASK_ID).state == "running"
        records.record_finished(
            RunEntry.from_wire({**final_entry(TASK_ID), "task_name": "tests.parse"}),
            first_error=None,
        )
        assert records.flush_rows(10)
        assert TaskLog.objects.get(task_id=TASK_ID).state == "succeeded"
    finally:
        records.write_rows_in_background(False)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("background", [True, False])
def test_steps_around_the_final_row_keep_their_order(
    background: bool, uploaded: list[dict[str, Any]]
) -> None:
    """``before`` runs before the row is saved and ``after`` once it is and log_uploaded was
    sent, in the writer's thread as in the caller's; a failing step stops nothing."""
    from celery_parselog.entry import RunEntry

    seen: list[str] = []

    def before() -> None:
        seen.append(f"before: rows {TaskLog.objects.filter(task_id=TASK_ID).count()}")
        raise RuntimeError("a step that fails")

    def after() -> None:
        seen.append(f"after: rows {TaskLog.objects.count()}, signals {len(uploaded)}")

    records.write_rows_in_background(background)
    try:
        records.record_finished(
            RunEntry.from_wire({**final_entry(TASK_ID), "task_name": "tests.parse"}),
            first_error=None,
            before=before,
            after=after,
        )
        assert records.flush_rows(10)
    finally:
        records.write_rows_in_background(False)
    assert seen == ["before: rows 0", "after: rows 1, signals 1"]
    assert TaskLog.objects.get(task_id=TASK_ID).upload_status == "stored"


@pytest.mark.django_db(transaction=True)
def test_runs_that_end_together_are_written_in_one_transaction(
    uploaded: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ends that reach the writer within its gathering time share one commit; each run's
    log_uploaded is sent, and its files step run, only once its row is committed."""
    import threading

    from django.db.backends.base.base import BaseDatabaseWrapper

    from celery_parselog.entry import RunEntry

    commits: list[str] = []
    commit = BaseDatabaseWrapper.commit

    def counting(self: BaseDatabaseWrapper) -> None:
        commit(self)
        if threading.current_thread().name == "celery-parselog-rows":
            commits.append("commit")

    monkeypatch.setattr(BaseDatabaseWrapper, "commit", counting)
    # Longer than any stall of a busy machine between the calls below.
    monkeypatch.setattr(records, "GATHER_ENDS", 2.0)
    seen: list[str] = []
    task_ids = [new_id() for _ in range(3)]

    def after(task_id: str) -> None:
        visible = TaskLog.objects.filter(task_id=task_id).exists()
        seen.append(f"{task_id}: row {visible}, commits {len(commits)}, signals {len(uploaded)}")

    records.write_rows_in_background()
    try:
        for task_id in task_ids:
            entry = RunEntry.from_wire({**final_entry(task_id), "task_name": "tests.parse"})
            records.record_finished(
                entry, first_error=None, after=functools.partial(after, task_id)
            )
        assert records.flush_rows(10)
    finally:
        records.write_rows_in_background(False)
    assert commits == ["commit"]
    assert seen == [
        f"{task_id}: row True, commits 1, signals {number}"
        for number, task_id in enumerate(task_ids, start=1)
    ]
    assert TaskLog.objects.filter(task_id__in=task_ids, upload_status="stored").count() == 3


@override_settings(CELERY_PARSELOG_SUBJECT="{owner}")
def test_arguments_subject_and_first_error_are_redacted() -> None:
    """Arguments are redacted as one JSON text (a number under an ``ssn`` key, a dict key),
    and so are the subject and the first error line: the row holds none of the values."""
    record_started(
        pending_entry(TASK_ID),
        hostname="worker-1",
        arguments={"owner": "jane.doe@example.org"},
        args=[{"ssn": 267390412}],
        kwargs={"contact": "jane.doe@example.org"},
    )
    record_finished(
        final_entry(TASK_ID), first_error="ERROR parse: bad row for jane.doe@example.org"
    )
    row = TaskLog.objects.get(task_id=TASK_ID)
    stored = f"{row.args} {row.kwargs} {row.subject} {row.first_error}"
    assert "267390412" not in stored
    assert "jane.doe@example.org" not in stored
    assert "[REDACTED:" in row.subject
    assert "[REDACTED:" in row.first_error
