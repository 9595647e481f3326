"""Receivers that start a :class:`~celery_parselog.run.Run` at ``task_prerun`` and finish it
at ``task_postrun``.

They are connected only in worker processes where capture is on (see
:mod:`celery_parselog.worker`), so web processes, shells, beat and clients pay
nothing. Every receiver returns at once for tasks that are not selected, and
catches its own failures: capture never raises into a task, nor changes its
state or result.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_postrun, task_prerun

from celery_parselog.routing import CaptureRouter, current_run
from celery_parselog.run import CaptureConfig, Run

__all__ = ["CaptureConfig", "CaptureReceivers"]

logger = logging.getLogger("celery_parselog")


class CaptureReceivers:
    """The ``task_prerun``/``task_postrun`` receivers of one worker process, and its router.

    An instance is kept alive by :mod:`celery_parselog.worker` and connected with
    strong references, because Celery holds receivers weakly by default.
    """

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.router = CaptureRouter(config.loggers)
        self._warned_about_levels = False

    def connect(self) -> None:
        task_prerun.connect(self.on_task_prerun, weak=False, dispatch_uid="celery_parselog.prerun")
        task_postrun.connect(
            self.on_task_postrun, weak=False, dispatch_uid="celery_parselog.postrun"
        )

    def disconnect(self) -> None:
        task_prerun.disconnect(dispatch_uid="celery_parselog.prerun")
        task_postrun.disconnect(dispatch_uid="celery_parselog.postrun")
        self.router.close()

    def on_task_prerun(
        self,
        sender: Any = None,
        task_id: str | None = None,
        task: Any = None,
        args: Any = None,
        kwargs: Any = None,
        **_: Any,
    ) -> None:
        if task is None or not self.config.selector.matches(task.name):
            return
        try:
            run = Run.start(self.config, task, str(task_id), tuple(args or ()), dict(kwargs or {}))
            if run is not None:
                self._warn_if_levels_hide_records()
                self.router.enter(run)
        except Exception:
            logger.exception("Could not start capturing %s[%s]", task.name, task_id)

    def on_task_postrun(
        self,
        sender: Any = None,
        task_id: str | None = None,
        retval: Any = None,
        state: str | None = None,
        **_: Any,
    ) -> None:
        run = current_run()
        if not isinstance(run, Run) or run.task_id != str(task_id) or run.token is None:
            return
        self.router.leave(run.token)
        try:
            run.finish(retval, state)
        except Exception:
            logger.exception("Could not finish capturing %s[%s]", run.entry.task_name, task_id)

    def _warn_if_levels_hide_records(self) -> None:
        root_level = logging.getLogger().getEffectiveLevel()
        if not self._warned_about_levels and root_level > self.config.levelno:
            self._warned_about_levels = True
            logger.warning(
                "The root logger's level is %s, above CELERY_PARSELOG_LEVEL (%s): records "
                "below it are never created, so they cannot be captured. Start the worker "
                "with --loglevel=%s to capture them.",
                logging.getLevelName(root_level),
                logging.getLevelName(self.config.levelno),
                logging.getLevelName(self.config.levelno),
            )
