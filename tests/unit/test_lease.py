"""Unit tests for leases on running rows and for marking the runs of vanished workers lost."""

from __future__ import annotations

import gzip
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from celery import Celery
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import call_command
from django.db import connection
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext

from celery_parselog import lease, records
from celery_parselog.entry import RunEntry, Status
from celery_parselog.lost import LOST_REASON, find_lost
from celery_parselog.metadata import mark_checkpoint, publish, read_entry
from celery_parselog.models import TaskLog
from celery_parselog.recovery import RecoverySweeper
from celery_parselog.signals import log_uploaded
from tests.unit.runs import BASE_TIME, iso

pytestmark = pytest.mark.django_db

GONE = "gone@host-a#00000000"


@pytest.fixture(autouse=True)
def _no_identity() -> Iterator[None]:
    """Each test starts outside any worker, and leaves no identity behind."""
    lease.end()
    yield
    lease.end()


@pytest.fixture
def uploaded() -> Iterator[list[Any]]:
    """The rows of every log_uploaded sent during the test."""
    sent: list[Any] = []

    def receiver(task_log: Any = None, **_: Any) -> None:
        sent.append(task_log)

    log_uploaded.connect(receiver, dispatch_uid="tests.lease.uploaded")
    yield sent
    log_uploaded.disconnect(dispatch_uid="tests.lease.uploaded")


def entry(task_id: str | None = None, *, attempt: int = 1) -> RunEntry:
    """The pending entry of a run starting now, with its key under ``lease-tests/``."""
    task_id = task_id or str(uuid.uuid4())
    key = f"lease-tests/{task_id}-{attempt}.log.gz"
    return RunEntry(
        status=Status.PENDING,
        uri=f"file:///media/{key}",
        storage="default",
        key=key,
        attempt=attempt,
        task_id=task_id,
        task_name="tests.parse",
        started=iso(BASE_TIME),
    )


def start(run: RunEntry) -> TaskLog:
    records.record_started(run, hostname="host-a", arguments={}, args=[], kwargs={})
    row: TaskLog = TaskLog.objects.get(task_id=run.task_id)
    return row


def started_by(worker: str, run: RunEntry | None = None, *, age: float = 0.0) -> TaskLog:
    """The row of a run that ``worker`` started, its lease last renewed ``age`` seconds ago."""
    run = run or entry()
    lease._identity = worker
    try:
        row = start(run)
    finally:
        lease.end()
    TaskLog.objects.filter(pk=row.pk).update(heartbeat=Now() - timedelta(seconds=age))
    row.refresh_from_db()
    return row


def stored_end(run: RunEntry) -> RunEntry:
    """The final entry of ``run`` once it ended (SUCCESS, two seconds in) and was stored."""
    return run.replace(
        status=Status.STORED,
        finished=iso(BASE_TIME + timedelta(seconds=2)),
        task_state="SUCCESS",
        complete=True,
        bytes=10,
    )


def store_checkpoint(key: str, text: bytes = b"INFO tests: line 1\n") -> bytes:
    body = gzip.compress(text)
    assert storages["default"].save(key, ContentFile(body)) == key
    return body


# -- the lease's timing and identity -------------------------------------------------


def test_default_lease_marks_a_run_lost_within_76_seconds_of_its_worker_dying() -> None:
    """The documented figures: renewed every 15 s, 60 s long, looked for every 15 s by a
    sweeper that wakes every second."""
    timing = lease.Lease.current()
    assert (timing.renew_every, timing.seconds, timing.check_every) == (15, 60, 15)
    assert timing.bound == 76
    assert RecoverySweeper.PROBE_SECONDS <= 1


def test_a_worker_started_again_under_its_name_has_another_identity() -> None:
    """A restarted worker keeps its node name but must not renew its previous life's leases."""
    first = lease.begin("w@host")
    second = lease.begin("w@host")
    assert first.startswith("w@host#") and second.startswith("w@host#")
    assert first != second
    assert lease.identity() == second


# -- the lease is written with the row, and renewed per worker ----------------------


def test_a_worker_run_starts_with_a_lease_in_its_first_write() -> None:
    """In a worker, the row's first write carries the worker and a heartbeat: no extra query."""
    with CaptureQueriesContext(connection) as plain:
        start(entry())
    lease.begin("w@host")
    with CaptureQueriesContext(connection) as leased:
        row = start(entry())
    assert len(leased) == len(plain)
    assert row.worker == lease.identity()
    assert row.heartbeat is not None


def test_a_run_outside_a_worker_has_no_lease() -> None:
    """A row written by a process that is not a worker is never judged lost."""
    row = start(entry())
    assert (row.worker, row.heartbeat) == ("", None)


def test_renewal_is_one_update_for_every_running_row_of_the_worker_and_no_other() -> None:
    """One UPDATE renews the worker's running rows; other workers' and finished rows stay."""
    mine = [started_by("w1#a", age=40) for _ in range(3)]
    other = started_by("w2#b", age=40)
    finished = started_by("w1#a", age=40)
    TaskLog.objects.filter(pk=finished.pk).update(state="succeeded")
    with CaptureQueriesContext(connection) as queries:
        assert records.renew_leases("w1#a") == 3
    assert len(queries) == 1
    assert [row.pk for row in records.expired_runs(30)] == [other.pk]
    assert all(row.pk not in {m.pk for m in mine} for row in records.expired_runs(30))


def test_renewal_without_rows_or_identity_writes_nothing(settings: Any) -> None:
    """With rows off, or outside a worker, the keeper does not touch the database."""
    with CaptureQueriesContext(connection) as queries:
        assert records.renew_leases("") == 0
        settings.CELERY_PARSELOG_RECORDS = False
        assert records.renew_leases("w1#a") == 0
    assert len(queries) == 0


def test_keeper_renews_its_workers_leases_until_stopped() -> None:
    """The keeper thread renews at its interval, and stops when told."""
    renewed = threading.Event()
    seen: list[str] = []

    def renew(worker: str) -> None:
        seen.append(worker)
        renewed.set()

    keeper = lease.LeaseKeeper("w1#a", lease.Lease(0.04), renew)
    keeper.start()
    assert renewed.wait(5)
    keeper.stop()
    assert seen[0] == "w1#a"
    assert not keeper.is_alive()


def test_expired_runs_are_those_past_the_lease_and_never_the_callers_own() -> None:
    """Only running rows with a heartbeat older than the lease count, the caller's excepted."""
    old = started_by(GONE, age=120)
    own = started_by("me#1", age=120)
    fresh = started_by(GONE, age=0)
    unleased = start(entry())
    TaskLog.objects.filter(pk=unleased.pk).update(started=BASE_TIME - timedelta(days=1))
    found = {row.pk for row in records.expired_runs(60, besides="me#1")}
    assert found == {old.pk}
    assert fresh.pk not in found and own.pk not in found


# -- marking lost --------------------------------------------------------------------


def test_lost_run_points_at_its_last_checkpoint_marked_incomplete(
    app: Celery, uploaded: list[Any]
) -> None:
    """A run whose lease expired, with a checkpoint stored, is lost at that checkpoint: row,
    entry on the result, and log_uploaded all say so, with complete false."""
    run = entry()
    row = started_by(GONE, run, age=120)
    body = store_checkpoint(run.key)
    report = find_lost(backend=app.backend, storage="default", seconds=60)
    assert report.with_checkpoint == [run.key]
    row.refresh_from_db()
    assert row.state == "lost"
    assert row.complete is False
    assert row.incomplete_reason == LOST_REASON
    assert row.upload_status == "stored"
    assert row.bytes == len(body)
    assert row.key == run.key
    assert [sent.pk for sent in uploaded] == [row.pk]
    published = read_entry(app.backend, run.task_id)
    assert published is not None
    assert published.status is Status.STORED
    assert published.complete is False
    assert published.incomplete_reason == LOST_REASON
    assert published.key == run.key
    assert published.bytes == len(body)


def test_checkpoint_digest_from_the_pending_entry_reaches_the_row(app: Celery) -> None:
    """On key-value backends the run's pending entry names its checkpoint's digest; keep it."""
    run = entry()
    started_by(GONE, run, age=120)
    store_checkpoint(run.key)
    mark_checkpoint(
        app.backend, run.replace(checkpoint=iso(BASE_TIME), checkpoint_sha256="cd" * 32)
    )
    find_lost(backend=app.backend, storage="default", seconds=60)
    assert TaskLog.objects.get(task_id=run.task_id).sha256 == "cd" * 32


def test_lost_run_without_a_checkpoint_says_its_log_is_not_stored(
    app: Celery, uploaded: list[Any]
) -> None:
    """No checkpoint: the row is lost with upload failed, the entry says failed, no signal."""
    run = entry()
    row = started_by(GONE, run, age=120)
    report = find_lost(backend=app.backend, storage="default", seconds=60)
    assert report.without_checkpoint == [run.key]
    row.refresh_from_db()
    assert (row.state, row.upload_status, row.complete) == ("lost", "failed", False)
    assert "before any checkpoint" in row.upload_error
    assert uploaded == []
    published = read_entry(app.backend, run.task_id)
    assert published is not None and published.status is Status.FAILED
    assert published.incomplete_reason == LOST_REASON


def test_a_run_is_marked_lost_once_whoever_looks(app: Celery, uploaded: list[Any]) -> None:
    """Two sweepers finding one expired row: one marks it and sends log_uploaded, once."""
    run = entry()
    row = started_by(GONE, run, age=120)
    store_checkpoint(run.key)
    assert records.record_lost(row, run.replace(status=Status.STORED), seconds=60) is not None
    assert records.record_lost(row, run.replace(status=Status.STORED), seconds=60) is None
    assert find_lost(backend=app.backend, storage="default", seconds=60).marked == 0
    assert uploaded == []


def test_a_lease_renewed_after_the_row_was_found_is_not_marked() -> None:
    """The claim checks the lease again, so a worker that came back keeps its run."""
    run = entry()
    row = started_by(GONE, run, age=120)
    assert [found.pk for found in records.expired_runs(60)] == [row.pk]
    records.renew_leases(GONE)
    assert records.record_lost(row, run, seconds=60) is None
    row.refresh_from_db()
    assert row.state == "running"


def test_a_run_whose_final_row_write_failed_is_completed_from_its_entry(
    app: Celery, uploaded: list[Any]
) -> None:
    """A row left running although the run ended and published its entry is not lost: it
    takes the entry's final state."""
    run = entry()
    row = started_by(GONE, run, age=120)
    final = stored_end(run)
    publish(app.backend, final)
    report = find_lost(backend=app.backend, storage="default", seconds=60)
    assert (report.marked, report.settled) == (0, [run.key])
    row.refresh_from_db()
    assert (row.state, row.complete) == ("succeeded", True)


def test_a_storage_that_cannot_be_asked_leaves_the_run_for_the_next_look(app: Celery) -> None:
    """Whether a checkpoint exists is not guessed: the row stays running until storage answers."""
    run = entry()
    row = started_by(GONE, run, age=120)
    with mock.patch.object(type(storages["default"]), "exists", side_effect=OSError("down")):
        assert find_lost(backend=app.backend, storage="default", seconds=60).marked == 0
    row.refresh_from_db()
    assert row.state == "running"
    assert find_lost(backend=app.backend, storage="default", seconds=60).marked == 1


def test_a_worker_that_comes_back_corrects_its_lost_run_when_it_ends(app: Celery) -> None:
    """A run marked lost while its worker was only cut off takes its real end when it ends."""
    run = entry()
    row = started_by(GONE, run, age=120)
    find_lost(backend=app.backend, storage="default", seconds=60)
    final = stored_end(run)
    publish(app.backend, final)
    records.record_finished(final, first_error=None)
    row.refresh_from_db()
    assert (row.state, row.complete, row.incomplete_reason) == ("succeeded", True, "")
    published = read_entry(app.backend, run.task_id)
    assert published is not None and published.complete is True


# -- who looks -----------------------------------------------------------------------


def test_the_sweeper_looks_for_lost_runs_at_its_interval(tmp_path: Path) -> None:
    """A worker's sweeper calls its look for lost runs again and again, not only once."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    looked = threading.Semaphore(0)
    sweeper = RecoverySweeper(
        spool,
        storage="default",
        attempts=1,
        backoff=0,
        backend=None,
        interval=0,
        find_lost=looked.release,
        find_lost_every=0.01,
    )
    sweeper.start()
    try:
        assert looked.acquire(timeout=10)
        assert looked.acquire(timeout=10)
    finally:
        sweeper.stop()


def test_the_command_marks_expired_runs_lost_and_says_how_many(app: Celery) -> None:
    """``parselog_lost`` marks what a live worker would, and reports it."""
    with_checkpoint, without = entry(), entry()
    started_by(GONE, with_checkpoint, age=120)
    started_by(GONE, without, age=120)
    started_by(GONE, age=5)
    store_checkpoint(with_checkpoint.key)
    out = StringIO()
    with mock.patch(
        "celery_parselog.management.commands.parselog_lost.result_backend",
        return_value=app.backend,
    ):
        call_command("parselog_lost", "--older-than", "60", "-v", "2", stdout=out)
    text = out.getvalue()
    assert f"lost, at its last checkpoint: {with_checkpoint.key}" in text
    assert f"lost, no checkpoint: {without.key}" in text
    assert "Marked 2 runs lost (1 at their last checkpoint, 1 without one)" in text
    assert TaskLog.objects.filter(state="running").count() == 1
