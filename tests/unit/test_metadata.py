"""Unit tests for celery_parselog.metadata: the ``parselog`` entry on a key-value result backend."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, Task, states
from celery.backends.base import BaseKeyValueStoreBackend
from celery.result import AsyncResult
from django.conf import settings
from django.db import connection
from django.test import override_settings

from celery_parselog import metadata
from celery_parselog.entry import RunEntry, Status
from celery_parselog.metadata import ENTRY, LogInfo, log_info
from tests.unit.routed import read_wire
from tests.unit.runs import new_id


def _parse(data_file_id: int) -> None:
    """Body of ``tests.parse``; never run here."""


@pytest.fixture
def app(app: Celery) -> Celery:
    """The test's app (a key-value result backend), with ``tests.parse``."""
    app.task(name="tests.parse", shared=False)(_parse)
    return app


@pytest.fixture
def task(app: Celery) -> Task[Any, Any]:
    """The task whose backend carries the entries."""
    return app.tasks["tests.parse"]


def entry(task_id: str, status: str, **more: Any) -> RunEntry:
    """A ``parselog`` entry as the receivers write it."""
    values: dict[str, Any] = {
        "status": status,
        "uri": f"file:///media/parsing_logs/{task_id}-1.log.gz",
        "storage": "default",
        "key": f"parsing_logs/{task_id}-1.log.gz",
        "attempt": 1,
        "task_id": task_id,
        "started": "2024-01-02T03:04:05.000+00:00",
    }
    values.update(more)
    return RunEntry.from_wire(values)


def stored_entry(task_id: str) -> RunEntry:
    """The final entry of a run whose log was stored."""
    return entry(
        task_id,
        "stored",
        bytes=123,
        sha256="ab" * 32,
        counts={"INFO": 2, "ERROR": 1},
        finished="2024-01-02T03:04:06.000+00:00",
    )


def test_pending_entry_is_readable_before_any_result(task: Task[Any, Any], app: Celery) -> None:
    """mark_pending makes log_info report a pending log while the task has no result yet."""
    task_id = new_id()
    metadata.mark_pending(task, entry(task_id, "pending"))
    result: AsyncResult[Any] = AsyncResult(task_id, app=app)
    assert result.state == states.PENDING
    info = log_info(result)
    assert info is not None
    assert info.status == "pending"
    assert not info.stored
    assert info.key == f"parsing_logs/{task_id}-1.log.gz"
    assert info.task_id == task_id


def test_published_entry_joins_the_stored_result_without_changing_it(
    task: Task[Any, Any], app: Celery
) -> None:
    """After a SUCCESS result, publish() adds ``parselog`` to its metadata and keeps the result."""
    task_id = new_id()
    metadata.mark_pending(task, entry(task_id, "pending"))
    app.backend.store_result(task_id, {"x": 1}, states.SUCCESS)
    metadata.publish(task.backend, stored_entry(task_id))
    meta = app.backend.get_task_meta(task_id, cache=False)
    assert meta[ENTRY]["status"] == "stored"
    assert meta[ENTRY] == stored_entry(task_id).to_wire()
    assert meta["status"] == states.SUCCESS
    assert meta["result"] == {"x": 1}
    assert AsyncResult(task_id, app=app).get(timeout=1) == {"x": 1}


def test_published_entry_joins_a_failure_result_without_changing_it(
    task: Task[Any, Any], app: Celery
) -> None:
    """A FAILURE result keeps its exception after the entry is merged into its metadata."""
    task_id = new_id()
    app.backend.store_result(task_id, ValueError("bad row"), states.FAILURE)
    metadata.publish(task.backend, stored_entry(task_id))
    result: AsyncResult[Any] = AsyncResult(task_id, app=app)
    assert result.state == states.FAILURE
    with pytest.raises(ValueError, match="bad row"):
        result.get(timeout=1)
    assert app.backend.get_task_meta(task_id, cache=False)[ENTRY]["status"] == "stored"


def test_published_entry_without_a_result_is_readable(task: Task[Any, Any], app: Celery) -> None:
    """A task that stores no result still has its final entry, under the entry's own key."""
    task_id = new_id()
    metadata.publish(task.backend, stored_entry(task_id))
    assert "parselog" not in app.backend.get_task_meta(task_id, cache=False)
    assert read_wire(app.backend, task_id) == stored_entry(task_id).to_wire()
    info = log_info(AsyncResult(task_id, app=app))
    assert info is not None
    assert info.stored


def test_log_info_waits_for_the_final_entry(task: Task[Any, Any], app: Celery) -> None:
    """log_info(wait=...) keeps reading while pending and returns the entry once it is stored."""
    task_id = new_id()
    metadata.mark_pending(task, entry(task_id, "pending"))
    app.backend.store_result(task_id, {"x": 1}, states.SUCCESS)
    result: AsyncResult[Any] = AsyncResult(task_id, app=app)
    first = log_info(result)
    assert first is not None
    assert first.status == "pending"

    publisher = threading.Timer(0.2, metadata.publish, args=(task.backend, stored_entry(task_id)))
    publisher.start()
    try:
        info = log_info(result, wait=30, poll=0.01)
    finally:
        publisher.join(30)
    assert info is not None
    assert info.status == "stored"
    assert info == stored_entry(task_id)


def test_log_info_returns_the_pending_entry_when_the_wait_runs_out(
    task: Task[Any, Any], app: Celery
) -> None:
    """When nothing is published in time, log_info(wait=...) returns the pending LogInfo."""
    task_id = new_id()
    metadata.mark_pending(task, entry(task_id, "pending"))
    info = log_info(AsyncResult(task_id, app=app), wait=0.1, poll=0.01)
    assert info is not None
    assert info.status == "pending"
    assert info.task_id == task_id


def test_log_info_of_an_unknown_task_is_none(app: Celery) -> None:
    """A task id with neither result nor entry has no log."""
    assert log_info(AsyncResult(new_id(), app=app)) is None
    assert log_info(AsyncResult(new_id(), app=app), wait=0.05, poll=0.01) is None


def test_log_info_of_a_result_without_entry_is_none(app: Celery) -> None:
    """A stored result of a run that was not captured has no log."""
    task_id = new_id()
    app.backend.store_result(task_id, 5, states.SUCCESS)
    assert log_info(AsyncResult(task_id, app=app)) is None


def test_log_info_round_trips_through_from_entry() -> None:
    """LogInfo.from_entry(asdict(info)) gives back an equal LogInfo."""
    info = LogInfo(
        status=Status.STORED,
        uri="s3://bucket/logs/a.log.gz",
        storage="logs",
        key="logs/a.log.gz",
        attempt=2,
        task_id="a",
        bytes=99,
        sha256="cd" * 32,
        counts={"INFO": 3},
        started="2024-01-02T03:04:05.000+00:00",
        finished="2024-01-02T03:04:06.000+00:00",
        error=None,
    )
    assert LogInfo.from_entry(dataclasses.asdict(info)) == info


def test_from_entry_fills_what_a_pending_entry_lacks() -> None:
    """A minimal entry reads as pending, attempt 1, no size, digest or counts."""
    info = LogInfo.from_entry({"task_id": "t", "key": "k"})
    assert info.status == "pending"
    assert info.attempt == 1
    assert info.bytes is None
    assert info.sha256 is None
    assert dict(info.counts) == {}
    assert not info.stored


# -- django-celery-results' django-db backend ------------------------------------------


@pytest.fixture
def django_db_app(transactional_db: None) -> Iterator[tuple[Celery, Any]]:
    """A Celery app on the ``django-db`` backend, with django_celery_results installed for the test.

    The app is added with override_settings and its table made with the schema
    editor (then dropped), so the test settings stay as they are.
    """
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, "django_celery_results"]):
        from django_celery_results.models import TaskResult

        with connection.schema_editor() as editor:
            editor.create_model(TaskResult)
        celery_app = Celery("unit", set_as_current=False, broker="memory://", backend="django-db")
        celery_app.task(name="tests.parse", shared=False)(_parse)
        try:
            yield celery_app, TaskResult
        finally:
            celery_app.close()
            with connection.schema_editor() as editor:
                editor.delete_model(TaskResult)


def store_pending_result(app: Celery) -> str:
    """Do what a worker does for a new run of ``tests.parse`` up to its result: mark_pending
    puts the entry in request.meta, then the result is stored with that request. Returns
    the run's task id."""
    task = app.tasks["tests.parse"]
    task_id = new_id()
    task.push_request(id=task_id, retries=0, is_eager=False, root_id=task_id, args=[1], kwargs={})
    try:
        metadata.mark_pending(task, entry(task_id, "pending"))
        assert task.request.meta[ENTRY]["status"] == "pending"  # type: ignore[attr-defined]
        app.backend.store_result(task_id, {"x": 1}, states.SUCCESS, request=task.request)
    finally:
        task.pop_request()
    return task_id


def test_django_db_pending_entry_is_stored_with_the_result(
    django_db_app: tuple[Celery, Any],
) -> None:
    """On django-db, mark_pending puts the entry in request.meta, stored along with the result."""
    app, task_result = django_db_app
    task_id = store_pending_result(app)
    row = task_result.objects.get(task_id=task_id)
    assert row.status == states.SUCCESS
    info = log_info(AsyncResult(task_id, app=app))
    assert info is not None
    assert info.status == "pending"
    assert info.key == f"parsing_logs/{task_id}-1.log.gz"


def test_django_db_published_entry_joins_the_row_without_changing_the_result(
    django_db_app: tuple[Celery, Any],
) -> None:
    """On django-db, publish() merges the final entry into the row's meta; the result stays."""
    app, task_result = django_db_app
    task_id = store_pending_result(app)
    metadata.publish(app.tasks["tests.parse"].backend, stored_entry(task_id))
    meta = app.backend.get_task_meta(task_id, cache=False)
    assert meta[ENTRY] == stored_entry(task_id).to_wire()
    assert meta["status"] == states.SUCCESS
    assert meta["result"] == {"x": 1}
    assert task_result.objects.filter(task_id=task_id).count() == 1
    info = log_info(AsyncResult(task_id, app=app))
    assert info == stored_entry(task_id)


def test_django_db_publish_without_a_row_does_nothing(django_db_app: tuple[Celery, Any]) -> None:
    """On django-db, a task that stored no result gets no row from publish() and no error."""
    app, task_result = django_db_app
    task_id = new_id()
    metadata.publish(app.tasks["tests.parse"].backend, stored_entry(task_id))
    assert not task_result.objects.filter(task_id=task_id).exists()
    assert log_info(AsyncResult(task_id, app=app)) is None


# -- one truth, the latest run, and what LogInfo carries ---------------------------------


def test_no_key_still_says_pending_after_the_final_entry(task: Task[Any, Any], app: Celery) -> None:
    """Once the final entry joins the result, the key of its own (the pending entry) is gone."""
    task_id = new_id()
    metadata.mark_pending(task, entry(task_id, "pending"))
    app.backend.store_result(task_id, {"x": 1}, states.SUCCESS)
    metadata.publish(task.backend, stored_entry(task_id))
    backend = app.backend
    assert isinstance(backend, BaseKeyValueStoreBackend)
    assert backend.get(f"celery-parselog-meta-{task_id}") is None
    assert app.backend.get_task_meta(task_id, cache=False)[ENTRY]["status"] == "stored"


@pytest.mark.parametrize(
    ("later", "earlier"),
    [
        ({"attempt": 3, "key": "k-3"}, {"attempt": 1, "key": "k-1"}),
        ({"delivery": 2, "key": "k-1-d2"}, {"delivery": 1, "key": "k-1"}),
    ],
    ids=["attempt", "delivery"],
)
def test_a_late_upload_of_an_earlier_run_never_replaces_a_later_one(
    task: Task[Any, Any], app: Celery, later: dict[str, Any], earlier: dict[str, Any]
) -> None:
    """Attempt 3 is published, then attempt 1's slow upload finishes: the entry stays attempt
    3. Likewise, of one attempt, delivery 2's entry wins over a late one of delivery 1."""
    task_id = new_id()
    app.backend.store_result(task_id, {"x": 1}, states.SUCCESS)
    metadata.publish(task.backend, entry(task_id, "stored", **later))
    metadata.publish(task.backend, entry(task_id, "stored", **earlier))
    info = log_info(task_id, app=app)
    assert info is not None
    assert (info.attempt, info.delivery, info.key) == (
        later.get("attempt", 1),
        later.get("delivery", 1),
        later["key"],
    )


def test_log_info_takes_a_task_id() -> None:
    """log_info("…") reads through the given app, as log_info(AsyncResult(…)) does."""
    celery_app = Celery("ids", set_as_current=False, broker="memory://", backend="cache+memory://")
    try:
        task_id = new_id()
        celery_app.backend.store_result(task_id, 1, states.SUCCESS)
        metadata.publish(celery_app.backend, stored_entry(task_id))
        info = log_info(task_id, app=celery_app)
        assert info is not None
        assert info.stored
    finally:
        celery_app.close()


def test_log_info_carries_every_field_of_the_entry() -> None:
    """complete, incomplete_reason, earlier_keys, task_state, omitted and checkpoint are kept."""
    info = LogInfo.from_entry(
        {
            "status": "stored",
            "task_id": "t",
            "key": "k",
            "complete": False,
            "incomplete_reason": "worker lost",
            "earlier_keys": ["k-1"],
            "task_state": "FAILURE",
            "omitted": {"records": 3, "bytes": 90},
            "checkpoint": "2026-01-01T00:00:00.000+00:00",
        }
    )
    assert info.complete is False
    assert info.incomplete_reason == "worker lost"
    assert info.earlier_keys == ("k-1",)
    assert info.task_state == "FAILURE"
    assert dict(info.omitted or {}) == {"records": 3, "bytes": 90}
    assert info.checkpoint == "2026-01-01T00:00:00.000+00:00"
