"""Signals celery-parselog sends, for projects that act on a stored log.

``log_uploaded``
    Sent once a run's log is confirmed by the storage and its ``TaskLog`` row is
    saved: at the end of the run, or when recovery stores a log its run left behind.
    Arguments: ``sender`` is :class:`~celery_parselog.models.TaskLog`, and
    ``task_log`` is the saved row (``task_log.uri``, ``task_log.key``,
    ``task_log.subject``, ``task_log.counts`` ...).

    It is sent in the worker process (the recovering process, for recovered logs),
    after the task's body returned, with ``send_robust``: a receiver that raises is
    logged through the ``celery_parselog.records`` logger and cannot affect the task
    or the other receivers. No row means no signal, so it is not sent when
    ``CELERY_PARSELOG_RECORDS`` is off or the row could not be written. Keep
    receivers short: the worker's next task waits for them.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["log_uploaded"]

log_uploaded = Signal()
