"""Turning capture on in worker processes, and only there.

Capture starts from Celery's ``worker_init`` signal, which only a worker sends
(web processes, shells, beat and clients never do). It decides from the worker's
``--parselog``/``--no-parselog`` option when one was given, and from
``CELERY_PARSELOG_ENABLED`` otherwise. Prefork children inherit the receivers
when they are forked from the main process.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Celery
from celery.signals import task_failure, task_revoked
from click import Option

from celery_parselog import lease
from celery_parselog.conf import ParselogSettings, SettingError
from celery_parselog.lost import find_lost
from celery_parselog.metadata import settle_entry
from celery_parselog.receivers import CaptureConfig, CaptureReceivers
from celery_parselog.recovery import RecoverySweeper

__all__ = [
    "active_receivers",
    "disable",
    "enable",
    "install",
    "on_worker_init",
    "on_worker_ready",
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
    global _receivers
    stop_recovery()
    lease.end()
    if _receivers is not None:
        _receivers.disconnect()
        _receivers = None


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
        _keeper = lease.LeaseKeeper(worker, timing)
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
    """Receiver of ``worker_shutdown``: stop the sweeper before the process exits."""
    stop_recovery()


def on_worker_init(sender: Any = None, **_: Any) -> None:
    """Receiver of ``worker_init``: decide whether this worker captures, and start if so."""
    options = getattr(sender, "options", None) or {}
    flag = options.get(OPTION)
    try:
        wanted = ParselogSettings().enabled if flag is None else bool(flag)
        if not wanted:
            return
        patterns = ParselogSettings().tasks
        enable()
        # Before the pool forks its children, so that they inherit it.
        lease.begin(str(getattr(sender, "hostname", None) or "worker"))
    except SettingError as error:
        # Signal receivers cannot stop a worker from starting (Celery logs and
        # ignores their exceptions), so say loudly why nothing will be captured.
        logger.error("celery-parselog is off in this worker: %s", error)
        return
    logger.info(
        "celery-parselog captures tasks matching %s in this worker",
        ", ".join(patterns) or "nothing (CELERY_PARSELOG_TASKS is empty)",
    )


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    """Receiver of ``worker_ready``: start recovery, and report what only a worker can see.

    The first sweep stores what a previous life of this worker left behind. Outside
    a worker the project's task modules are usually not imported yet, so a pattern
    that matches nothing, or a key field a task lacks, is reported here.
    """
    if _receivers is None or sender is None:
        return
    from celery_parselog.checks import registered_task_problems

    start_recovery(sender.app.backend)
    settings = ParselogSettings()
    registered = {
        name: task.run for name, task in sender.app.tasks.items() if not name.startswith("celery.")
    }
    for problem in registered_task_problems(registered, settings.tasks, settings.key):
        level = logging.ERROR if problem.is_serious() else logging.WARNING
        logger.log(level, "%s (%s) %s", problem.msg, problem.id, problem.hint)
