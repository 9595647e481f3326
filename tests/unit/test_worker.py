"""Unit tests for celery_parselog.worker: the worker option, turning capture on and off, workers."""

from __future__ import annotations

import gzip
import logging
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
from celery import Celery, Task
from celery.contrib import pytest as celery_pytest
from celery.result import AsyncResult
from celery.signals import task_postrun, task_prerun
from celery.utils.log import get_task_logger
from celery.worker import WorkController
from django.core.files.storage import storages
from django.test import override_settings

import celery_parselog
from celery_parselog import worker
from celery_parselog.conf import ParselogSettings
from celery_parselog.metadata import log_info
from celery_parselog.receivers import CaptureConfig, CaptureReceivers

FORMAT = "%(levelname)s %(name)s: %(message)s"

# The thread-embedded worker of celery.contrib.pytest. pytest-celery's plugin also
# defines a ``celery_worker`` (a container-based one), so the contrib one is named here.
celery_worker = celery_pytest.celery_worker

embedded_logger = get_task_logger("tests.worker.embedded")


def _parse(data_file_id: int) -> int:
    """Body of ``tests.parse``: logs a line and returns its argument doubled."""
    logging.getLogger("tests.worker.body").info("parsing %d", data_file_id)
    return data_file_id * 2


def _embedded(data_file_id: int) -> dict[str, int]:
    """Body of ``tests.embedded``, run by the embedded worker: logs and prints."""
    embedded_logger.info("embedded parse of %d", data_file_id)
    print("rows", 10)
    return {"rows": 10}


@pytest.fixture(autouse=True)
def _root_logs_everything() -> None:
    """Let INFO records be created, as in a worker started with --loglevel=INFO."""
    logging.getLogger().setLevel(logging.DEBUG)


@pytest.fixture
def app() -> Iterator[Celery]:
    """A Celery app (in-memory broker and results) with the selected task ``tests.parse``."""
    celery_app = Celery("unit", set_as_current=False, broker="memory://", backend="cache+memory://")
    celery_app.task(name="tests.parse", shared=False)(_parse)
    yield celery_app
    celery_app.close()


def spool_entries() -> set[Path]:
    """Everything in the configured spool folder."""
    folder = ParselogSettings().spool_dir
    return set(folder.iterdir()) if folder.exists() else set()


def stored_files_naming(task_id: str) -> list[Path]:
    """Files anywhere in the default storage whose name contains ``task_id``."""
    return list(Path(storages["default"].path("")).rglob(f"*{task_id}*"))


def send_prerun(task: Task[Any, Any], task_id: str) -> None:
    """Send task_prerun for ``task`` as a worker would, with a non-eager request pushed."""
    task.push_request(id=task_id, retries=0, is_eager=False, root_id=task_id)
    task_prerun.send(sender=task, task_id=task_id, task=task, args=(7,), kwargs={})


def send_postrun(task: Task[Any, Any], task_id: str) -> None:
    """Send the task_postrun matching :func:`send_prerun` and pop its request."""
    try:
        task_postrun.send(
            sender=task,
            task_id=task_id,
            task=task,
            args=(7,),
            kwargs={},
            retval=14,
            state="SUCCESS",
        )
    finally:
        task.pop_request()


# -- the --parselog option -----------------------------------------------------------


def test_install_adds_the_parselog_switch_to_the_worker_command(app: Celery) -> None:
    """install() gives the worker a --parselog/--no-parselog option that defaults to None."""
    celery_parselog.install(app)
    options = [o for o in app.user_options["worker"] if getattr(o, "name", None) == "parselog"]
    assert len(options) == 1
    option = options[0]
    assert isinstance(option, click.Option)
    assert option.opts == ["--parselog"]
    assert option.secondary_opts == ["--no-parselog"]
    command = click.Command("worker", params=[option])
    assert command.make_context("worker", ["--parselog"]).params == {"parselog": True}
    assert command.make_context("worker", ["--no-parselog"]).params == {"parselog": False}
    assert command.make_context("worker", []).params == {"parselog": None}


# -- worker_init ---------------------------------------------------------------------


@override_settings(CELERY_PARSELOG_ENABLED=False)
def test_option_on_enables_capture_whatever_the_setting() -> None:
    """--parselog turns capture on even with CELERY_PARSELOG_ENABLED=False."""
    assert worker.active_receivers() is None
    worker.on_worker_init(sender=SimpleNamespace(options={"parselog": True}))
    assert isinstance(worker.active_receivers(), CaptureReceivers)


@override_settings(CELERY_PARSELOG_ENABLED=True)
def test_option_off_keeps_capture_off_whatever_the_setting() -> None:
    """--no-parselog keeps capture off even with CELERY_PARSELOG_ENABLED=True."""
    worker.on_worker_init(sender=SimpleNamespace(options={"parselog": False}))
    assert worker.active_receivers() is None


@override_settings(CELERY_PARSELOG_ENABLED=True)
def test_setting_on_enables_capture_without_the_option() -> None:
    """Without the option, CELERY_PARSELOG_ENABLED=True turns capture on."""
    worker.on_worker_init(sender=SimpleNamespace(options={}))
    assert worker.active_receivers() is not None


@override_settings(CELERY_PARSELOG_ENABLED=True)
def test_setting_on_enables_capture_for_a_sender_without_options() -> None:
    """A sender with no ``options`` attribute at all is decided by the setting."""
    worker.on_worker_init(sender=object())
    assert worker.active_receivers() is not None


@override_settings(CELERY_PARSELOG_ENABLED=False)
def test_setting_off_keeps_capture_off_without_the_option() -> None:
    """Without the option, CELERY_PARSELOG_ENABLED=False leaves capture off."""
    worker.on_worker_init(sender=SimpleNamespace(options={}))
    assert worker.active_receivers() is None


@override_settings(CELERY_PARSELOG_LEVEL="LOUD")
def test_bad_setting_keeps_capture_off_and_logs_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """A bad CELERY_PARSELOG_LEVEL leaves capture off and logs an error naming the setting."""
    with caplog.at_level(logging.ERROR, logger="celery_parselog"):
        worker.on_worker_init(sender=SimpleNamespace(options={"parselog": True}))
    assert worker.active_receivers() is None
    errors = [
        r for r in caplog.records if r.name == "celery_parselog" and r.levelno == logging.ERROR
    ]
    assert len(errors) == 1
    assert "CELERY_PARSELOG_LEVEL" in errors[0].getMessage()
    assert "LOUD" in errors[0].getMessage()


@override_settings(CELERY_PARSELOG_ENABLED="yes")
def test_bad_enabled_setting_keeps_capture_off_and_logs_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A non-boolean CELERY_PARSELOG_ENABLED (no option given) is reported, not raised."""
    with caplog.at_level(logging.ERROR, logger="celery_parselog"):
        worker.on_worker_init(sender=SimpleNamespace(options={}))
    assert worker.active_receivers() is None
    assert any(
        "CELERY_PARSELOG_ENABLED" in r.getMessage()
        for r in caplog.records
        if r.name == "celery_parselog" and r.levelno == logging.ERROR
    )


# -- enable / disable ----------------------------------------------------------------


def test_enable_is_idempotent(app: Celery) -> None:
    """A second enable() returns the same receivers, and one task_prerun opens one run."""
    first = worker.enable()
    with override_settings(CELERY_PARSELOG_LEVEL="ERROR"):
        second = worker.enable(CaptureConfig.from_settings())
    assert second is first
    assert worker.active_receivers() is first
    assert first.config.levelno == logging.INFO
    task = app.tasks["tests.parse"]
    task_id = str(uuid.uuid4())
    send_prerun(task, task_id)
    try:
        assert first.router.active_runs == 1
    finally:
        send_postrun(task, task_id)
    assert first.router.active_runs == 0


def test_disable_disconnects_the_receivers(app: Celery) -> None:
    """After disable(), task_prerun for a selected task opens no run and writes no spool file."""
    receivers = worker.enable()
    task = app.tasks["tests.parse"]
    captured_id = str(uuid.uuid4())
    send_prerun(task, captured_id)
    try:
        assert receivers.router.active_runs == 1  # connected: the signal reaches them
    finally:
        send_postrun(task, captured_id)
    assert stored_files_naming(captured_id) != []

    worker.disable()
    assert worker.active_receivers() is None
    before = spool_entries()
    ignored_id = str(uuid.uuid4())
    send_prerun(task, ignored_id)
    try:
        assert receivers.router.active_runs == 0
        assert spool_entries() == before
    finally:
        send_postrun(task, ignored_id)
    assert stored_files_naming(ignored_id) == []
    worker.disable()  # a second disable is harmless
    assert worker.active_receivers() is None


# -- eager mode ----------------------------------------------------------------------


def test_eager_runs_are_never_captured(app: Celery) -> None:
    """With task_always_eager, .delay() of a selected task makes no spool file, stores nothing."""
    eager_app = Celery(
        "unit-eager", set_as_current=False, broker="memory://", backend="cache+memory://"
    )
    eager_app.conf.task_always_eager = True
    parse = eager_app.task(name="tests.parse", shared=False)(_parse)
    prerun_ids: list[str] = []

    def note_prerun(task_id: str | None = None, **_: Any) -> None:
        prerun_ids.append(str(task_id))

    receivers = worker.enable()
    task_prerun.connect(note_prerun, weak=False, dispatch_uid="tests.note_prerun")
    before = spool_entries()
    try:
        result = parse.delay(21)
        assert result.get() == 42
    finally:
        task_prerun.disconnect(dispatch_uid="tests.note_prerun")
        eager_app.close()
    assert prerun_ids == [result.id]  # the receivers were given the run, and declined it
    assert receivers.router.active_runs == 0
    assert spool_entries() == before
    assert stored_files_naming(result.id) == []
    # Read through a non-eager app on the same in-memory backend (eager apps refuse to read).
    assert log_info(AsyncResult(result.id, app=app)) is None


# -- a real embedded worker (celery.contrib.pytest) ----------------------------------


@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    """In-memory broker and a key-value result backend for celery.contrib.pytest's app."""
    return {"broker_url": "memory://", "result_backend": "cache+memory://"}


@pytest.fixture(scope="session")
def celery_worker_pool() -> str:
    """The embedded worker runs tasks in its own thread (solo pool)."""
    return "solo"


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    """Start the embedded worker as ``--loglevel=INFO`` (it sets the task loggers' level)."""
    return {"loglevel": "INFO"}


@pytest.fixture
def capture_on() -> CaptureReceivers:
    """Capture enabled in this process with a time-free format and a flat key."""
    with override_settings(
        CELERY_PARSELOG_FORMAT=FORMAT, CELERY_PARSELOG_KEY="embedded/{task_id}-{attempt}.log"
    ):
        return worker.enable()


@pytest.fixture
def celery_app(celery_app: Celery, capture_on: CaptureReceivers) -> Celery:
    """celery.contrib.pytest's app with ``tests.embedded``; capture is on before a worker starts."""
    celery_app.task(name="tests.embedded", shared=False)(_embedded)
    return celery_app


def test_embedded_worker_run_is_stored_and_readable(
    celery_app: Celery, capture_on: CaptureReceivers, celery_worker: WorkController
) -> None:
    """A selected task run by a real embedded worker gets a stored log and a ``parselog`` entry."""
    assert worker.active_receivers() is capture_on
    result = celery_app.tasks["tests.embedded"].delay(7)
    assert result.get(timeout=30) == {"rows": 10}
    info = log_info(result, wait=30)
    assert info is not None
    assert info.status == "stored"
    assert info.key == f"embedded/{result.id}-1.log.gz"
    assert info.task_id == result.id
    with storages["default"].open(info.key, "rb") as stream:
        lines = gzip.decompress(stream.read()).decode("utf-8").splitlines()
    assert lines[:2] == [
        "INFO tests.worker.embedded: embedded parse of 7",
        "INFO stdout: rows 10",
    ]
    # The worker's own record of the run is part of the run's log; the ping task is not.
    assert len(lines) == 3
    assert lines[2].startswith(
        f"INFO celery.app.trace: Task tests.embedded[{result.id}] succeeded in "
    )
    assert info.counts == {"INFO": 3}
    assert capture_on.router.active_runs == 0
