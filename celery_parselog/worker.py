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

from celery import Celery
from click import Option

from celery_parselog.conf import ParselogSettings, SettingError
from celery_parselog.receivers import CaptureConfig, CaptureReceivers

__all__ = [
    "active_receivers",
    "disable",
    "enable",
    "install",
    "on_worker_init",
    "on_worker_ready",
]

logger = logging.getLogger("celery_parselog")

OPTION = "parselog"

# The receivers of this process while capture is on. Held here so they stay
# alive, and reset by disable() so tests can start from a clean state.
_receivers: CaptureReceivers | None = None


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
    """Stop capturing in this process: disconnect the receivers and forget them."""
    global _receivers
    if _receivers is not None:
        _receivers.disconnect()
        _receivers = None


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
    """Receiver of ``worker_ready``: report what only a complete task registry shows.

    Outside a worker the project's task modules are usually not imported yet, so
    a pattern that matches nothing, or a key field a task lacks, is reported here.
    """
    if _receivers is None or sender is None:
        return
    from celery_parselog.checks import registered_task_problems

    settings = ParselogSettings()
    registered = {
        name: task.run for name, task in sender.app.tasks.items() if not name.startswith("celery.")
    }
    for problem in registered_task_problems(registered, settings.tasks, settings.key):
        level = logging.ERROR if problem.is_serious() else logging.WARNING
        logger.log(level, "%s (%s) %s", problem.msg, problem.id, problem.hint)
