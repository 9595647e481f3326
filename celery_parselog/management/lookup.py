"""Finding runs by task id or subject for the management commands, with clear errors."""

from __future__ import annotations

from django.core.management.base import CommandError

from celery_parselog.models import TaskLog

__all__ = ["latest_two_of_subject", "run_of"]


def run_of(task_id: str, attempt: int | None = None) -> TaskLog:
    """The run of ``task_id`` (its last attempt unless one is given), or a CommandError."""
    row: TaskLog | None = TaskLog.objects.run_of(task_id, attempt)
    if row is not None:
        return row
    known = TaskLog.objects.attempts_of(task_id)
    if attempt is not None and known:
        raise CommandError(
            f"Task {task_id} has no attempt {attempt}; its recorded attempts are "
            f"{', '.join(map(str, known))}."
        )
    raise CommandError(
        f"No run of task {task_id} is recorded. Check the task id; runs are recorded "
        "only while CELERY_PARSELOG_RECORDS is on."
    )


def latest_two_of_subject(subject: str) -> tuple[TaskLog, TaskLog]:
    """The two latest runs of ``subject``, earlier first, or a CommandError."""
    runs = TaskLog.objects.latest_of_subject(subject, 2)
    if len(runs) < 2:
        raise CommandError(
            f"Subject {subject!r} has {len(runs)} recorded run"
            f"{'' if len(runs) == 1 else 's'}; comparing needs two."
        )
    return runs[1], runs[0]
