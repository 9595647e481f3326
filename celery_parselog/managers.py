"""The queries over ``TaskLog`` that pages and commands share: a run, its predecessor, a
subject's latest runs. One place, so the admin and the commands agree on what "the
previous run" means."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from celery_parselog.models import TaskLog

__all__ = ["TaskLogManager", "TaskLogQuerySet"]


class TaskLogQuerySet(models.QuerySet["TaskLog"]):
    """``TaskLog.objects``: the usual queryset, with the look-ups runs are found by."""

    def run_of(self, task_id: str, attempt: int | None = None) -> TaskLog | None:
        """The run of ``task_id``: the given attempt, or its last one; ``None`` if unknown.

        A message that came back after its worker was lost has a row per delivery of the
        same attempt; the run is the latest of them, as in the result's entry.
        """
        runs = self.filter(task_id=task_id)
        if attempt is not None:
            runs = runs.filter(attempt=attempt)
        found: TaskLog | None = runs.order_by("-attempt", "-delivery").first()
        return found

    def deliveries_of(self, row: TaskLog) -> list[TaskLog]:
        """Every delivery of ``row``'s attempt, ``row`` included, first delivery first."""
        return list(self.filter(task_id=row.task_id, attempt=row.attempt).order_by("delivery"))

    def attempts_of(self, task_id: str) -> list[int]:
        """The recorded attempts of ``task_id``, in order."""
        return sorted(self.filter(task_id=task_id).values_list("attempt", flat=True))

    def previous_of(self, row: TaskLog) -> TaskLog | None:
        """The run of the same subject that started last before ``row``, if any.

        Runs that started at the same moment are ordered by primary key, so every run
        but the first of a subject has exactly one predecessor.
        """
        if not row.subject:
            return None
        found: TaskLog | None = (
            self.filter(subject=row.subject, started__lte=row.started)
            .exclude(pk=row.pk)
            .exclude(started=row.started, pk__gt=row.pk)
            .order_by("-started", "-pk")
            .first()
        )
        return found

    def latest_of_subject(self, subject: str, count: int = 2) -> list[TaskLog]:
        """The ``count`` latest runs of ``subject``, latest first."""
        return list(self.filter(subject=subject).order_by("-started", "-pk")[:count])

    def with_errors(self) -> TaskLogQuerySet:
        """Runs that logged at least one ERROR or CRITICAL record."""
        found: TaskLogQuerySet = self.filter(
            models.Q(counts__ERROR__gt=0) | models.Q(counts__CRITICAL__gt=0)
        )
        return found

    def incomplete(self) -> TaskLogQuerySet:
        """Runs whose log says it did not reach the run's end."""
        found: TaskLogQuerySet = self.filter(complete=False)
        return found


TaskLogManager = models.Manager.from_queryset(TaskLogQuerySet)
