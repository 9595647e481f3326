"""Unit tests for celery_parselog.worker: the worker option, turning capture on and off, workers."""

from __future__ import annotations

import gzip
import logging
import uuid
from collections.abc import Mapping
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


pytestmark = pytest.mark.usefixtures("root_logs_everything")


@pytest.fixture
def app(app: Celery) -> Celery:
    """The test's app (in-memory broker and results), with the selected task ``tests.parse``."""
    app.task(name="tests.parse", shared=False)(_parse)
    return app


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


def parselog_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """The level and text of every record of the ``celery_parselog`` logger."""
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "celery_parselog"]


def start_worker_signals(app: Celery, options: dict[str, Any]) -> None:
    """Send worker_init then celeryd_after_setup's receiver, as ``celery worker`` does."""
    worker.on_worker_init(sender=SimpleNamespace(options=options, app=app))
    worker.on_worker_setup(sender="unit@host", instance=SimpleNamespace(app=app))


@override_settings(CELERY_PARSELOG_ENABLED=True)
def test_worker_init_logs_nothing(app: Celery, caplog: pytest.LogCaptureFixture) -> None:
    """worker_init says nothing: Celery has not set up the worker's logging yet."""
    with caplog.at_level(logging.DEBUG, logger="celery_parselog"):
        worker.on_worker_init(sender=SimpleNamespace(options={}, app=app))
    assert worker.active_receivers() is not None
    assert parselog_lines(caplog) == []


@override_settings(
    CELERY_PARSELOG_ENABLED=True,
    CELERY_PARSELOG_TASKS=["tests.parse", "tests.pa*"],
    CELERY_PARSELOG_KEY="files/{data_file_id}/{task_id}-{attempt}.log",
)
def test_setup_says_capture_is_on(app: Celery, caplog: pytest.LogCaptureFixture) -> None:
    """Once set up, the worker's log names the captured tasks, storage, key and spool folder."""
    with caplog.at_level(logging.DEBUG, logger="celery_parselog"):
        start_worker_signals(app, {})
    lines = parselog_lines(caplog)
    assert len(lines) == 1
    level, text = lines[0]
    assert level == logging.INFO
    assert "captures in this worker: tasks tests.parse " in text
    assert "(CELERY_PARSELOG_TASKS tests.parse, tests.pa*)" in text
    assert "storage 'default' (django.core.files.storage.filesystem.FileSystemStorage)" in text
    assert "key files/{data_file_id}/{task_id}-{attempt}.log" in text
    assert f"spool folder {ParselogSettings().spool_dir}" in text


@override_settings(CELERY_PARSELOG_ENABLED=True)
def test_setup_warns_when_the_log_level_hides_records(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    """With the root logger above LEVEL, the capture line is a warning naming --loglevel."""
    logging.getLogger().setLevel(logging.WARNING)
    with caplog.at_level(logging.DEBUG, logger="celery_parselog"):
        start_worker_signals(app, {})
    ((level, text),) = parselog_lines(caplog)
    assert level == logging.WARNING
    assert "start it with --loglevel INFO" in text


@pytest.mark.parametrize(
    ("settings", "options"),
    [
        ({"CELERY_PARSELOG_ENABLED": True, "CELERY_PARSELOG_MAX_BYTES": "128MB"}, {}),
        (
            {"CELERY_PARSELOG_ENABLED": False, "CELERY_PARSELOG_MAX_BYTES": "128MB"},
            {"parselog": True},
        ),
        ({"CELERY_PARSELOG_ENABLED": "yes", "CELERY_PARSELOG_MAX_BYTES": "128MB"}, {}),
    ],
)
def test_invalid_settings_refuse_to_start(
    app: Celery,
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, Any],
    options: dict[str, Any],
) -> None:
    """Capture asked for with a bad setting: an ERROR with id and hint, then SystemExit(78)."""
    with (
        override_settings(**settings),
        caplog.at_level(logging.DEBUG, logger="celery_parselog"),
        pytest.raises(SystemExit) as exited,
    ):
        start_worker_signals(app, options)
    assert exited.value.code == 78
    assert worker.active_receivers() is None
    errors = [text for level, text in parselog_lines(caplog) if level == logging.ERROR]
    assert any(
        text.startswith("CELERY_PARSELOG_MAX_BYTES: '128MB' is not 0 or a whole number")
        and "[celery_parselog.E008] Set CELERY_PARSELOG_MAX_BYTES to " in text
        for text in errors
    )
    if settings["CELERY_PARSELOG_ENABLED"] == "yes":
        assert any("[celery_parselog.E008] Set CELERY_PARSELOG_ENABLED" in t for t in errors)
    critical = [text for level, text in parselog_lines(caplog) if level == logging.CRITICAL]
    assert len(critical) == 1
    assert "does not start" in critical[0]


@override_settings(
    CELERY_PARSELOG_ENABLED=True,
    CELERY_PARSELOG_TASKS=["tests.parse"],
    CELERY_PARSELOG_KEY="{datafile_id}/{task_id}-{attempt}.log",
)
def test_task_dependent_error_refuses_to_start(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    """A key field the selected task lacks is an E002 ERROR in the log, and no start."""
    with caplog.at_level(logging.DEBUG, logger="celery_parselog"), pytest.raises(SystemExit):
        start_worker_signals(app, {})
    errors = [text for level, text in parselog_lines(caplog) if level == logging.ERROR]
    assert len(errors) == 1
    assert "datafile_id" in errors[0]
    assert "[celery_parselog.E002]" in errors[0]


@override_settings(
    CELERY_PARSELOG_ENABLED=True, CELERY_PARSELOG_TASKS=["tests.parse", "tests.missing"]
)
def test_unmatched_pattern_is_a_warning_and_the_worker_starts(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    """A TASKS entry matching no task is a W002 warning; capture stays on."""
    with caplog.at_level(logging.DEBUG, logger="celery_parselog"):
        start_worker_signals(app, {})
    lines = parselog_lines(caplog)
    assert (logging.WARNING, lines[0][1]) == lines[0]
    assert "'tests.missing' matches no registered task. [celery_parselog.W002]" in lines[0][1]
    assert lines[1][0] == logging.INFO
    assert worker.active_receivers() is not None


@override_settings(CELERY_PARSELOG_ENABLED=True, CELERY_PARSELOG_MAX_BYTES="128MB")
def test_no_parselog_starts_without_capture_whatever_the_settings(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    """--no-parselog is the way to start a worker without capture despite bad settings."""
    with caplog.at_level(logging.DEBUG, logger="celery_parselog"):
        start_worker_signals(app, {"parselog": False})
    assert worker.active_receivers() is None
    assert parselog_lines(caplog) == []


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
