"""Unit tests for celery_parselog.receivers: task_prerun/task_postrun with a real Celery app."""

from __future__ import annotations

import copy
import gzip
import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest
from celery import Celery, Task, states
from celery.app.trace import build_tracer
from celery.result import AsyncResult
from celery.signals import task_postrun
from django.core.files.storage import Storage, storages
from django.test import override_settings

from celery_parselog.metadata import LogInfo, log_info
from celery_parselog.receivers import CaptureConfig, CaptureReceivers
from celery_parselog.routing import current_run
from celery_parselog.run import Run
from celery_parselog.spool import manifest_path, read_manifest
from tests.unit.faults import file_size_limit, is_open
from tests.unit.routed import read_wire
from tests.unit.runs import new_id, stored_lines

KEY = "parsing_logs/{data_file_id}/{reparse_id}/{task_id}-{attempt}.log"
FORMAT = "%(levelname)s %(name)s: %(message)s"
STATICFILES = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

body_logger = logging.getLogger("tests.receivers.body")


class FailingStorage(Storage):
    """A storage whose every save fails with OSError, counting the attempts."""

    saves: ClassVar[int] = 0

    def exists(self, name: str) -> bool:
        return False

    def _save(self, name: str, content: Any) -> str:
        FailingStorage.saves += 1
        raise OSError("the disk is on fire")


# What ``tests.parse`` does when the tracer runs it: each test sets its own body.
_bodies: list[Callable[[], Any]] = []


def _parse(data_file_id: int, reparse_id: int | None = None) -> Any:
    """Body of ``tests.parse``: runs the body of the test that traces it."""
    return _bodies[-1]() if _bodies else {"rows": data_file_id}


def _report(day: str) -> Any:
    """Body of ``other.report``, which ``tests.*`` does not select."""
    return _bodies[-1]() if _bodies else None


pytestmark = pytest.mark.usefixtures("root_logs_everything")


@pytest.fixture
def app(app: Celery) -> Celery:
    """The test's app (in-memory broker, key-value results), with ``tests.parse`` and
    ``other.report``."""
    app.task(name="tests.parse", shared=False)(_parse)
    app.task(name="other.report", shared=False)(_report)
    return app


@pytest.fixture
def parse(app: Celery) -> Task[Any, Any]:
    """The selected task ``tests.parse(data_file_id, reparse_id=None)``."""
    return app.tasks["tests.parse"]


@pytest.fixture
def report(app: Celery) -> Task[Any, Any]:
    """The unselected task ``other.report(day)``."""
    return app.tasks["other.report"]


def make_config(**settings: Any) -> CaptureConfig:
    """CaptureConfig read from the test settings plus the given CELERY_PARSELOG_* overrides."""
    values: dict[str, Any] = {
        "CELERY_PARSELOG_KEY": KEY,
        "CELERY_PARSELOG_FORMAT": FORMAT,
        "CELERY_PARSELOG_UPLOAD_BACKOFF": 0,
        # The tracer's own lines ("Task … succeeded in 0.004s") are left out, so the
        # tests read exactly what their bodies logged; end-to-end tests keep them.
        "CELERY_PARSELOG_LOGGERS": ["*", "-celery.app.trace"],
    }
    values.update(settings)
    with override_settings(**values):
        return CaptureConfig.from_settings()


@pytest.fixture
def receivers() -> CaptureReceivers:
    """Receivers (not connected to signals) with the key template KEY and a time-free format."""
    return CaptureReceivers(make_config())


@pytest.fixture
def task_id() -> str:
    """The id of the test's task: a fresh one."""
    return new_id()


def spool_files(receivers: CaptureReceivers, task_id: str) -> list[Path]:
    """Spool files of runs of ``task_id`` in the configured spool folder."""
    folder = receivers.config.spool_dir
    return sorted(folder.glob(f"{task_id}-*")) if folder.exists() else []


class Traced(NamedTuple):
    """What a traced run gave: the task's return value and state, and what ``between`` saw."""

    retval: Any
    state: str
    seen: Any


def run_task(
    receivers: CaptureReceivers,
    task: Task[Any, Any],
    task_id: str,
    body: Callable[[], Any],
    *,
    args: tuple[Any, ...] = (7,),
    kwargs: dict[str, Any] | None = None,
    retries: int = 0,
    is_eager: bool = False,
    between: Callable[[], Any] | None = None,
    root_id: str | None = None,
    delivery_info: dict[str, Any] | None = None,
) -> Traced:
    """Run ``body`` as the task, through Celery's own tracer (what a worker's pool runs):
    task_prerun, the body, the result stored, task_postrun.

    ``between`` runs after the result is stored and before the receivers' task_postrun;
    what it returns is the result's ``seen``.
    """

    ended: dict[str, Any] = {}

    def before_our_postrun(
        sender: Any = None, retval: Any = None, state: str | None = None, **_: Any
    ) -> None:
        if sender is task:
            ended.update(retval=retval, state=state)
            if between is not None:
                ended["seen"] = between()

    # Receivers run in the order they were connected: this one before the package's.
    task_postrun.connect(before_our_postrun, weak=False, dispatch_uid="tests.between")
    receivers.connect()
    _bodies.append(body)
    try:
        trace = build_tracer(task.name, task, eager=is_eager, propagate=False, app=task.app)
        request = {
            "id": task_id,
            "retries": retries,
            "is_eager": is_eager,
            "root_id": root_id or task_id,
            "delivery_info": delivery_info or {},
        }
        trace(task_id, list(args), {"reparse_id": 3} if kwargs is None else kwargs, request)
    finally:
        _bodies.pop()
        receivers.disconnect()
        task_postrun.disconnect(dispatch_uid="tests.between")
    return Traced(ended["retval"], ended["state"], ended.get("seen"))


def parse_body() -> dict[str, int]:
    """A task body that logs two records and prints one line."""
    body_logger.info("parsing file %d", 7)
    print("rows", 10)
    body_logger.warning("one bad row")
    return {"rows": 10}


def test_successful_run_is_stored_under_its_key(
    receivers: CaptureReceivers, parse: Task[Any, Any], task_id: str
) -> None:
    """A selected run's log is stored gzip under the rendered key, with every line in order."""
    run_task(receivers, parse, task_id, parse_body)
    key = f"parsing_logs/7/3/{task_id}-1.log.gz"
    assert storages["default"].exists(key)
    assert stored_lines(key) == [
        "INFO tests.receivers.body: parsing file 7",
        "INFO stdout: rows 10",
        "WARNING tests.receivers.body: one bad row",
    ]


def test_spool_file_is_deleted_after_upload(
    receivers: CaptureReceivers, parse: Task[Any, Any], task_id: str
) -> None:
    """The spool file exists while the task runs and is gone once the log is stored."""
    traced = run_task(
        receivers,
        parse,
        task_id,
        parse_body,
        kwargs={},
        between=lambda: spool_files(receivers, task_id),
    )
    assert sorted(path.name.endswith(".log.gz.json") for path in traced.seen) == [False, True]
    log_file = next(path for path in traced.seen if path.name.endswith(".log.gz"))
    assert spool_files(receivers, task_id) == []
    assert not log_file.exists()


def test_entry_is_pending_during_the_run_and_stored_after(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery, task_id: str
) -> None:
    """log_info says pending (planned key) while running, then stored with size and digest."""
    result: AsyncResult[Any] = AsyncResult(task_id, app=app)
    seen: list[LogInfo | None] = []

    def body() -> dict[str, int]:
        seen.append(log_info(result))
        return parse_body()

    run_task(receivers, parse, task_id, body)
    key = f"parsing_logs/7/3/{task_id}-1.log.gz"
    pending = seen[0]
    assert pending is not None
    assert pending.status == "pending"
    assert pending.key == key
    assert not pending.stored
    info = log_info(result)
    assert info is not None
    assert info.status == "stored"
    assert info.key == key
    assert info.attempt == 1
    assert info.task_id == task_id
    assert info.storage == "default"
    assert info.uri == Path(storages["default"].path(key)).resolve().as_uri()
    with storages["default"].open(key, "rb") as stream:
        data = stream.read()
    assert info.bytes == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.counts == {"INFO": 2, "WARNING": 1}
    assert info.started is not None
    assert info.finished is not None
    assert info.started <= info.finished


def test_return_value_and_state_are_untouched(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery, task_id: str
) -> None:
    """Receivers return None and leave the task's return value and stored state as they were."""
    returned = {"rows": 10, "nested": {"a": [1, 2]}}
    snapshot = copy.deepcopy(returned)
    retval, state, _ = run_task(receivers, parse, task_id, lambda: returned, kwargs={})
    assert retval is returned
    assert returned == snapshot
    assert state == states.SUCCESS
    meta = app.backend.get_task_meta(task_id, cache=False)
    assert meta["status"] == states.SUCCESS
    assert meta["result"] == snapshot
    assert meta["parselog"]["status"] == "stored"
    assert AsyncResult(task_id, app=app).get(timeout=1) == snapshot


def test_unselected_task_leaves_nothing(
    receivers: CaptureReceivers, report: Task[Any, Any], app: Celery, task_id: str
) -> None:
    """A task no pattern selects gets no spool file, no stored log, no entry and no routing."""

    def body() -> None:
        body_logger.info("report")

    traced = run_task(
        receivers,
        report,
        task_id,
        body,
        args=("monday",),
        kwargs={},
        between=lambda: [current_run(), receivers.router.active_runs],
    )
    assert traced.seen == [None, 0]
    assert spool_files(receivers, task_id) == []
    assert read_wire(app.backend, task_id) is None
    assert log_info(AsyncResult(task_id, app=app)) is None
    assert not storages["default"].exists(f"parselog/other.report/{task_id}-1.log.gz")


def test_eager_request_is_not_captured(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery, task_id: str
) -> None:
    """A request with is_eager=True (a call in the caller's process) captures nothing."""
    traced = run_task(
        receivers,
        parse,
        task_id,
        parse_body,
        is_eager=True,
        between=lambda: [current_run(), len(spool_files(receivers, task_id))],
    )
    assert traced.seen == [None, 0]
    assert spool_files(receivers, task_id) == []
    assert log_info(AsyncResult(task_id, app=app)) is None
    assert not storages["default"].exists(f"parsing_logs/7/3/{task_id}-1.log.gz")


def test_failure_without_logged_traceback_stores_the_traceback(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery, task_id: str
) -> None:
    """A FAILURE whose exception no logger wrote gets an ERROR line and the traceback in the log."""

    def failing() -> None:
        body_logger.info("about to fail")
        raise ValueError("bad row 12")

    retval, state, _ = run_task(receivers, parse, task_id, failing)
    assert state == states.FAILURE
    assert isinstance(retval, ValueError)
    lines = stored_lines(f"parsing_logs/7/3/{task_id}-1.log.gz")
    assert lines[0] == "INFO tests.receivers.body: about to fail"
    assert lines[1] == f"ERROR celery_parselog.task: Task tests.parse[{task_id}] raised ValueError"
    assert lines[2] == "Traceback (most recent call last):"
    assert any('raise ValueError("bad row 12")' in line for line in lines)
    assert lines[-1] == "ValueError: bad row 12"
    entry = read_wire(app.backend, task_id)
    assert entry is not None
    assert entry["task_state"] == states.FAILURE
    assert entry["counts"] == {"INFO": 1, "ERROR": 1}


def test_failure_with_logged_traceback_is_not_written_twice(
    receivers: CaptureReceivers, parse: Task[Any, Any], task_id: str
) -> None:
    """When the traceback was already logged during the run, it is not added again."""

    def failing() -> None:
        try:
            raise KeyError("column")
        except KeyError:
            body_logger.exception("parse failed")
            raise

    run_task(receivers, parse, task_id, failing)
    lines = stored_lines(f"parsing_logs/7/3/{task_id}-1.log.gz")
    assert lines[0] == "ERROR tests.receivers.body: parse failed"
    assert lines.count("Traceback (most recent call last):") == 1
    assert not any("celery_parselog.task" in line for line in lines)


def test_failed_upload_keeps_the_spool_file_and_publishes_failed(
    parse: Task[Any, Any], app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    """When every save raises: nothing escapes, spool kept, entry "failed", an error logged."""
    FailingStorage.saves = 0
    failing_storages = {
        "default": {"BACKEND": f"{__name__}.FailingStorage"},
        "staticfiles": STATICFILES,
    }
    task_id = new_id()
    with override_settings(STORAGES=failing_storages):
        receivers = CaptureReceivers(make_config(CELERY_PARSELOG_UPLOAD_ATTEMPTS=2))
        with caplog.at_level(logging.WARNING, logger="celery_parselog"):
            run_task(receivers, parse, task_id, parse_body)
    assert FailingStorage.saves == 2
    info = log_info(AsyncResult(task_id, app=app))
    assert info is not None
    assert info.status == "failed"
    assert not info.stored
    assert info.error is not None
    assert "after 2 attempts" in info.error
    assert "OSError: the disk is on fire" in info.error
    assert info.uri == f"storage://default/parsing_logs/7/3/{task_id}-1.log.gz"
    entry = read_wire(app.backend, task_id)
    assert entry is not None
    spool = Path(entry["spool"])
    try:
        assert spool_files(receivers, task_id) == [spool, manifest_path(spool)]
        manifest = read_manifest(manifest_path(spool))
        assert manifest["status"] == "failed"
        assert manifest["key"] == f"parsing_logs/7/3/{task_id}-1.log.gz"
        assert not is_open(spool)
        assert gzip.decompress(spool.read_bytes()).decode().splitlines() == [
            "INFO tests.receivers.body: parsing file 7",
            "INFO stdout: rows 10",
            "WARNING tests.receivers.body: one bad row",
        ]
        errors = [
            r for r in caplog.records if r.name == "celery_parselog" and r.levelno == logging.ERROR
        ]
        assert len(errors) == 1
        assert str(spool) in errors[0].getMessage()
        assert task_id in errors[0].getMessage()
        assert current_run() is None
        assert receivers.router.active_runs == 0
    finally:
        spool.unlink(missing_ok=True)


def test_spool_that_cannot_be_flushed_is_not_left_pending(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery, task_id: str
) -> None:
    """When the spool file cannot be completed, the published entry does not stay ``pending``."""
    try:
        with file_size_limit(16):  # the gzip buffer is only written out at close()
            run_task(receivers, parse, task_id, parse_body)
        assert current_run() is None
        assert receivers.router.active_runs == 0
        info = log_info(AsyncResult(task_id, app=app))
        assert info is not None
        assert info.status != "pending"
    finally:
        for path in spool_files(receivers, task_id):
            path.unlink()


def test_key_naming_a_missing_field_falls_back_with_a_warning(
    parse: Task[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A key template naming a field the task lacks falls back to parselog/<task>/… and warns."""
    receivers = CaptureReceivers(make_config(CELERY_PARSELOG_KEY="logs/{customer}/{task_id}.log"))
    task_id = new_id()
    with caplog.at_level(logging.WARNING, logger="celery_parselog"):
        run_task(receivers, parse, task_id, parse_body, kwargs={})
    key = f"parselog/tests.parse/{task_id}-1.log.gz"
    assert storages["default"].exists(key)
    assert stored_lines(key)[0] == "INFO tests.receivers.body: parsing file 7"
    warnings = [
        r for r in caplog.records if r.name == "celery_parselog" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert key in warnings[0].getMessage()
    assert "customer" in warnings[0].getMessage()


def test_retries_make_the_attempt_number(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery, task_id: str
) -> None:
    """A request with retries=2 is attempt 3: in the key, the spool name and the entry."""
    traced = run_task(
        receivers,
        parse,
        task_id,
        parse_body,
        retries=2,
        between=lambda: spool_files(receivers, task_id),
    )
    key = f"parsing_logs/7/3/{task_id}-3.log.gz"
    assert storages["default"].exists(key)
    assert traced.seen[0].name.startswith(f"{task_id}-3-")
    info = log_info(AsyncResult(task_id, app=app))
    assert info is not None
    assert info.attempt == 3
    assert info.key == key


def test_postrun_of_another_task_id_does_not_detach_the_current_run(
    receivers: CaptureReceivers, parse: Task[Any, Any], task_id: str
) -> None:
    """A task_postrun for some other task id leaves the current run attached and capturing."""

    def body() -> None:
        body_logger.info("before the stray postrun")
        receivers.on_task_postrun(
            sender=parse, task_id=new_id(), task=parse, retval=None, state=states.SUCCESS
        )
        run = current_run()
        assert isinstance(run, Run)
        assert run.task_id == task_id
        assert receivers.router.active_runs == 1
        body_logger.info("after the stray postrun")

    run_task(receivers, parse, task_id, body)
    assert stored_lines(f"parsing_logs/7/3/{task_id}-1.log.gz") == [
        "INFO tests.receivers.body: before the stray postrun",
        "INFO tests.receivers.body: after the stray postrun",
    ]


def test_unfinished_run_in_another_thread_does_not_detach_this_one(
    receivers: CaptureReceivers, parse: Task[Any, Any]
) -> None:
    """A prerun of another task (in another thread, no postrun yet) does not disturb this run."""
    other_id = new_id()
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_task() -> None:
        try:
            parse.push_request(id=other_id, retries=0, is_eager=False, root_id=other_id)
            receivers.on_task_prerun(sender=parse, task_id=other_id, task=parse, args=(8,))
            started.set()
            release.wait(30)
            body_logger.info("other task line")
            receivers.on_task_postrun(
                sender=parse, task_id=other_id, task=parse, retval=None, state=states.SUCCESS
            )
            parse.pop_request()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    thread = threading.Thread(target=other_task)
    thread.start()
    try:
        assert started.wait(30)
        task_id = new_id()

        def body() -> None:
            body_logger.info("this task line")
            assert receivers.router.active_runs == 2

        run_task(receivers, parse, task_id, body)
        assert receivers.router.active_runs == 1  # the other run is still going
    finally:
        release.set()
        thread.join(30)
    assert errors == []
    assert receivers.router.active_runs == 0
    assert stored_lines(f"parsing_logs/7/3/{task_id}-1.log.gz") == [
        "INFO tests.receivers.body: this task line"
    ]
    assert stored_lines(f"parsing_logs/8/None/{other_id}-1.log.gz") == [
        "INFO tests.receivers.body: other task line"
    ]


@pytest.mark.django_db
@override_settings(CELERY_PARSELOG_SUBJECT="{root_id}/{data_file_id}")
def test_subject_gets_the_root_id_of_the_workflow(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery
) -> None:
    """A run inside a workflow has the workflow's root id in its subject and entry, not its
    own task id."""
    from celery_parselog.models import TaskLog

    task_id, root_id = new_id(), new_id()
    run_task(receivers, parse, task_id, parse_body, kwargs={}, root_id=root_id)
    assert TaskLog.objects.get(task_id=task_id).subject == f"{root_id}/7"
    entry = read_wire(app.backend, task_id)
    assert entry is not None
    assert entry["root_id"] == root_id


@pytest.mark.django_db
def test_redelivered_message_gets_a_log_and_row_of_its_own(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery
) -> None:
    """A message run again with the same id and attempt (its worker was lost) is delivery 2:
    its own key, its own row, a link to the first delivery, and the first one's log stays."""
    from celery_parselog.models import TaskLog

    task_id = new_id()
    first_key = f"parsing_logs/7/None/{task_id}-1.log.gz"
    run_task(receivers, parse, task_id, lambda: body_logger.info("first delivery"), kwargs={})
    run_task(
        receivers,
        parse,
        task_id,
        lambda: body_logger.info("second delivery"),
        kwargs={},
        delivery_info={"redelivered": True},
    )
    second_key = f"parsing_logs/7/None/{task_id}-1.delivery-2.log.gz"
    assert stored_lines(first_key) == ["INFO tests.receivers.body: first delivery"]
    assert stored_lines(second_key) == ["INFO tests.receivers.body: second delivery"]
    info = log_info(AsyncResult(task_id, app=app))
    assert info is not None
    assert (info.key, info.delivery, info.redelivery_of) == (second_key, 2, first_key)
    rows = TaskLog.objects.filter(task_id=task_id).order_by("delivery")
    assert [(row.delivery, row.key, row.redelivery_of) for row in rows] == [
        (1, first_key, ""),
        (2, second_key, first_key),
    ]


@pytest.mark.django_db
def test_redelivery_is_known_from_the_entry_without_the_message_flag(
    receivers: CaptureReceivers, parse: Task[Any, Any], app: Celery, task_id: str
) -> None:
    """Transports that do not flag redeliveries: the entry the first delivery left is enough."""
    run_task(receivers, parse, task_id, lambda: body_logger.info("one"), kwargs={})
    run_task(receivers, parse, task_id, lambda: body_logger.info("two"), kwargs={})
    info = log_info(AsyncResult(task_id, app=app))
    assert info is not None
    assert info.delivery == 2
    assert info.key.endswith(f"{task_id}-1.delivery-2.log.gz")


@pytest.mark.django_db(transaction=True)
def test_in_a_worker_the_pending_entry_is_written_off_the_tasks_thread(
    receivers: CaptureReceivers,
    parse: Task[Any, Any],
    app: Celery,
    task_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With rows written in the background (as in a worker), the pending entry is written
    by the background writer, ahead of the final one: the task waits for no round trip."""
    from celery_parselog import metadata, records

    writes: list[tuple[str, list[str]]] = []
    write = metadata._write

    def recording(backend: Any, values: Any, deletes: list[str]) -> None:
        writes.append((threading.current_thread().name, sorted(map(str, values))))
        write(backend, values, deletes)

    monkeypatch.setattr(metadata, "_write", recording)
    result: AsyncResult[Any] = AsyncResult(task_id, app=app)
    seen: list[LogInfo | None] = []

    def body() -> None:
        assert records.flush_rows(10)
        seen.append(log_info(result))

    records.write_rows_in_background()
    try:
        run_task(receivers, parse, task_id, body)
        assert records.flush_rows(10)
    finally:
        records.write_rows_in_background(False)
    own_key = f"celery-parselog-meta-{task_id}"
    result_key = str(app.backend.get_key_for_task(task_id))  # type: ignore[attr-defined]
    assert writes == [
        ("celery-parselog-rows", [own_key]),
        ("celery-parselog-rows", [result_key]),
    ]
    assert seen[0] is not None
    assert seen[0].status == "pending"
    info = log_info(result)
    assert info is not None
    assert info.status == "stored"
