"""Turning capture on in worker processes, and only there.

Capture starts from Celery's ``worker_init`` signal, which only a worker sends
(web processes, shells, beat and clients never do). It decides from the worker's
``--parselog``/``--no-parselog`` option when one was given, and from
``CELERY_PARSELOG_ENABLED`` otherwise, from one validated snapshot of the
settings. Prefork children inherit the receivers when they are forked from the main
process. What was decided is logged at ``celeryd_after_setup``, once the worker's
logging exists; a worker asked to capture with wrong settings stops there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from os import EX_CONFIG
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Celery
from celery.signals import task_failure, task_revoked, worker_process_shutdown
from click import Option
from django.core.files.storage import storages

from celery_parselog import control, lease, metrics, records
from celery_parselog.conf import InvalidSettings, ParselogSettings, SettingError
from celery_parselog.lost import find_lost
from celery_parselog.metadata import settle_entry
from celery_parselog.receivers import CaptureConfig, CaptureReceivers
from celery_parselog.recovery import RecoverySweeper
from celery_parselog.selection import TaskSelector

__all__ = [
    "active_receivers",
    "disable",
    "enable",
    "install",
    "on_worker_init",
    "on_worker_ready",
    "on_worker_setup",
    "on_worker_shutdown",
    "start_recovery",
    "stop_recovery",
]

logger = logging.getLogger("celery_parselog")

OPTION = "parselog"

# The receivers of this process while capture is on, and the main process's
# recovery sweeper and lease keeper. Held here so they stay alive, and reset by
# disable() so tests can start from a clean state.
_receivers: CaptureReceivers | None = None
_sweeper: RecoverySweeper | None = None
_keeper: lease.LeaseKeeper | None = None


def install(app: Celery) -> None:
    """Give ``celery -A proj worker`` the ``--parselog/--no-parselog`` option.

    Call it once in the project's Celery module. The option wins over
    ``CELERY_PARSELOG_ENABLED`` for that worker; without it the setting decides.
    """
    app.user_options["worker"].add(
        Option(
            ["--parselog/--no-parselog", "parselog"],
            default=None,
            help="Capture each selected task run's log into a file of its own "
            "(default: CELERY_PARSELOG_ENABLED).",
        )
    )


def active_receivers() -> CaptureReceivers | None:
    """The receivers capturing in this process, or ``None`` when capture is off here."""
    return _receivers


def enable(config: CaptureConfig | None = None) -> CaptureReceivers:
    """Start capturing in this process (idempotent). Workers call it; tests may too."""
    global _receivers
    if _receivers is None:
        _receivers = CaptureReceivers(config or CaptureConfig.from_settings())
        _receivers.connect()
    return _receivers


def disable() -> None:
    """Stop capturing in this process: disconnect the receivers, stop recovery, forget both."""
    global _receivers, _startup
    _startup = None
    stop_recovery()
    records.flush_rows()
    records.write_rows_in_background(False)
    worker_process_shutdown.disconnect(dispatch_uid="celery_parselog.rows")
    lease.end()
    if _receivers is not None:
        _receivers.disconnect()
        _receivers = None


def _write_rows_in_background() -> None:
    """Workers write run records from a thread of their own (see records.RowWriter), and
    finish writing them before a pool child exits."""
    records.write_rows_in_background()
    worker_process_shutdown.connect(_flush_rows, weak=False, dispatch_uid="celery_parselog.rows")


def _flush_rows(**_: Any) -> None:
    records.flush_rows()


def start_recovery(backend: Any) -> RecoverySweeper | None:
    """Start sweeping the spool folder for orphaned logs in this (main) process.

    In a worker (one that has an identity, see :mod:`celery_parselog.lease`), also renew
    the leases of this worker's running rows and look for runs of lost workers.
    """
    global _sweeper, _keeper
    if _receivers is None or _sweeper is not None:
        return _sweeper
    config = _receivers.config
    worker, timing = lease.identity(), lease.Lease.current()
    if worker:
        _keeper = lease.LeaseKeeper(worker, timing, records.renew_leases)
        _keeper.start()

    def look_for_lost() -> object:
        return find_lost(backend=backend, storage=config.storage, lease=timing, besides=worker)

    _sweeper = RecoverySweeper(
        config.spool_dir,
        storage=config.storage,
        attempts=config.upload_attempts,
        backoff=config.upload_backoff,
        backend=backend,
        interval=config.recovery_interval,
        log_format=config.format,
        key_template=config.key,
        find_lost=look_for_lost if worker else None,
        find_lost_every=timing.check_every,
    )
    _sweeper.start()
    task_failure.connect(_on_task_failure, weak=False, dispatch_uid="celery_parselog.lost")
    task_revoked.connect(_on_task_revoked, weak=False, dispatch_uid="celery_parselog.revoked")
    return _sweeper


def stop_recovery() -> None:
    """Stop the sweeper (after the sweep in progress, if any) and the lease keeper, and stop
    listening for lost tasks."""
    global _sweeper, _keeper
    if _keeper is not None:
        _keeper.stop()
        _keeper = None
    if _sweeper is not None:
        task_failure.disconnect(dispatch_uid="celery_parselog.lost")
        task_revoked.disconnect(dispatch_uid="celery_parselog.revoked")
        _sweeper.stop()
        _sweeper = None


def _on_task_failure(
    sender: Any = None, task_id: str | None = None, exception: Any = None, **_: Any
) -> None:
    # Sent by the main process when a child died under a task (killed, out of
    # memory) or passed its hard time limit; that run's log is now an orphan.
    if _sweeper is not None and isinstance(exception, (WorkerLostError, TimeLimitExceeded)):
        _sweeper.wake()
        if task_id is not None and sender is not None:
            try:
                settle_entry(sender.backend, str(task_id))
            except Exception:  # noqa: BLE001 - the entry stays readable under its own key
                logger.warning("Could not move the log entry of %s into its result", task_id)


def _on_task_revoked(sender: Any = None, terminated: bool = False, **_: Any) -> None:
    if _sweeper is not None and terminated:
        _sweeper.wake()


def on_worker_shutdown(**_: Any) -> None:
    """Receiver of ``worker_shutdown``: stop the sweeper and write pending rows before the
    process exits."""
    stop_recovery()
    records.flush_rows()


@dataclass(frozen=True)
class _Startup:
    """What worker_init decided, kept until logging is set up and it can be said."""

    snapshot: ParselogSettings | None
    errors: tuple[SettingError, ...]


_startup: _Startup | None = None


def on_worker_init(sender: Any = None, **_: Any) -> None:
    """Receiver of ``worker_init``: decide whether this worker captures, and start if so.

    Nothing is logged here: Celery sets up the worker's logging after this signal, so
    a line logged now would be lost. What was decided is said by
    :func:`on_worker_setup`.
    """
    global _startup
    control.register()  # "Store now" in the admin reaches this worker through it
    options = getattr(sender, "options", None) or {}
    flag = options.get(OPTION)
    _startup = None
    if flag is None:
        try:
            wanted = ParselogSettings().enabled
        except SettingError:
            wanted = True  # asked for, with a value that is not a boolean: say so below
    else:
        wanted = bool(flag)
    if not wanted:
        return
    try:
        snapshot = ParselogSettings().snapshot()
        enable(CaptureConfig.from_settings(snapshot))
    except InvalidSettings as error:
        _startup = _Startup(None, error.errors)
        return
    # Before the pool forks its children, so that they inherit it.
    lease.begin(str(getattr(sender, "hostname", None) or "worker"))
    _write_rows_in_background()
    _startup = _Startup(snapshot, ())


def on_worker_setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
    """Receiver of ``celeryd_after_setup``: say in the worker's log what capture does.

    Celery sends it once the worker's logging is set up and its tasks are imported,
    before the banner and before any task is received. With capture asked for and a
    setting that is wrong, each problem is logged as an ERROR with its check id and
    hint, and the worker refuses to start (exit status 78, ``EX_CONFIG``): a worker
    running its tasks without their logs is the failure this package exists to
    prevent, and a worker that does not start is noticed at once.
    """
    from celery_parselog.checks import registered_task_problems, run_functions, setting_message

    startup = _startup
    if startup is None:
        return
    problems = [setting_message(error) for error in startup.errors]
    snapshot = startup.snapshot
    app = getattr(instance, "app", None)
    registered = run_functions(app) if app is not None else {}
    if snapshot is not None:
        problems.extend(
            registered_task_problems(
                registered, snapshot.tasks, snapshot.key, subject=snapshot.subject
            )
        )
    for problem in problems:
        level = logging.ERROR if problem.is_serious() else logging.WARNING
        logger.log(level, "%s [%s] %s", problem.msg, problem.id, problem.hint)
    if snapshot is None or any(problem.is_serious() for problem in problems):
        disable()
        logger.critical(
            "celery-parselog: this worker does not start, because capture is on "
            "(CELERY_PARSELOG_ENABLED or --parselog) and the settings above are wrong. "
            "Fix them (python manage.py check lists them all), or turn capture off "
            "for this worker with --no-parselog."
        )
        raise SystemExit(EX_CONFIG)
    _log_capture_on(snapshot, registered)


def _log_capture_on(settings: ParselogSettings, registered: Mapping[str, object]) -> None:
    selector = TaskSelector(settings.tasks)
    captured = sorted(name for name in registered if selector.matches(name))
    key = settings.key
    backend = type(storages[settings.storage])
    root_level = logging.getLogger().getEffectiveLevel()
    hidden = root_level > settings.level
    logger.log(
        logging.WARNING if hidden else logging.INFO,
        "celery-parselog captures in this worker: tasks %s (CELERY_PARSELOG_TASKS %s); "
        "storage %r (%s); key %s; spool folder %s%s",
        ", ".join(captured) or "none yet",
        ", ".join(settings.tasks) or "is empty",
        settings.storage,
        f"{backend.__module__}.{backend.__qualname__}",
        key if isinstance(key, str) else f"from {key.__module__}.{key.__qualname__}",
        settings.spool_dir,
        f"; but the worker's log level ({logging.getLevelName(root_level)}) drops records "
        f"below it before capture sees them: start it with --loglevel "
        f"{logging.getLevelName(settings.level)}"
        if hidden
        else "",
    )


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    """Receiver of ``worker_ready``: start recovery in the main process.

    The first sweep stores what a previous life of this worker left behind.
    """
    if _receivers is None or sender is None:
        return
    start_recovery(sender.app.backend)
    _serve_metrics()


def _serve_metrics() -> None:
    """Serve the metrics from this main process when ``METRICS_PORT`` says so, and have
    each pool child forget its live gauges as it exits."""
    port = ParselogSettings().metrics_port
    if port is None:
        return
    try:
        metrics.serve(port)
    except (ImportError, OSError, RuntimeError) as error:
        logger.error("celery-parselog cannot serve metrics on port %s: %s", port, error)
        return
    worker_process_shutdown.connect(
        _forget_child_metrics, weak=False, dispatch_uid="celery_parselog.metrics"
    )
    logger.info("celery-parselog serves metrics at http://127.0.0.1:%s/metrics", port)


def _forget_child_metrics(pid: int | None = None, **_: Any) -> None:
    if pid is not None:
        metrics.process_exited(pid)
