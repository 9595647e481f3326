"""``TaskLog``: one database row per captured run, so runs can be listed, searched and compared.

The stored object and the ``parselog`` entry on the result remain the record of
truth; a row is an index over them, written only by :mod:`celery_parselog.records`.
A missing row (the database was down, or ``CELERY_PARSELOG_RECORDS`` is off) never
means a missing log.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models

from celery_parselog.audit import LogRead
from celery_parselog.entry import Status
from celery_parselog.managers import TaskLogManager

__all__ = ["LogRead", "TaskLog"]


class TaskLog(models.Model):
    """One captured run of a task: who ran it, on what, how it ended, and where its log is."""

    class State(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        RETRIED = "retried", "retried"
        REVOKED = "revoked", "revoked"
        # The task did not reach its end: a time limit or a signal tore through it.
        INTERRUPTED = "interrupted", "interrupted"
        # The worker died mid-run; the log was stored later by recovery.
        LOST = "lost", "worker lost"
        # Any other Celery state (IGNORED, a custom state); ``task_state`` has its name.
        FINISHED = "finished", "finished"

    class UploadStatus(models.TextChoices):
        PENDING = Status.PENDING.value, "pending"
        STORED = Status.STORED.value, "stored"
        FAILED = Status.FAILED.value, "failed"

    task_id = models.CharField(max_length=255)
    task_name = models.CharField(max_length=255, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    delivery = models.PositiveIntegerField(
        default=1, help_text="2 and up when the message came back after its worker was lost."
    )
    redelivery_of = models.CharField(
        max_length=1024,
        blank=True,
        default="",
        help_text="The key of the earlier delivery of this message, whose worker was lost.",
    )
    hostname = models.CharField(max_length=255, blank=True, default="")
    worker = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="The worker running it: its node name and a token of that start.",
    )
    heartbeat = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last renewal of the run's lease by its worker, on the database's clock.",
    )
    subject = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Made from CELERY_PARSELOG_SUBJECT; runs with one subject are compared.",
    )
    args = models.JSONField(null=True, blank=True)
    kwargs = models.JSONField(null=True, blank=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    task_state = models.CharField(
        max_length=32, blank=True, default="", help_text="Celery's own state name, if any."
    )
    started = models.DateTimeField()
    finished = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    recovered = models.DateTimeField(
        null=True, blank=True, help_text="When recovery stored a log its run left behind."
    )

    storage = models.CharField(max_length=255, blank=True, default="")
    key = models.CharField(max_length=1024, blank=True, default="")
    uri = models.CharField(max_length=2048, blank=True, default="")
    bytes = models.BigIntegerField(null=True, blank=True, help_text="Stored (compressed) size.")
    sha256 = models.CharField(max_length=64, blank=True, default="")

    complete = models.BooleanField(null=True, blank=True)
    incomplete_reason = models.CharField(max_length=255, blank=True, default="")
    upload_status = models.CharField(
        max_length=16, choices=UploadStatus.choices, default=UploadStatus.PENDING
    )
    upload_error = models.TextField(blank=True, default="")

    counts = models.JSONField(default=dict, blank=True, help_text="Records by level name.")
    first_error = models.TextField(blank=True, default="")

    objects = TaskLogManager()

    class Meta:
        verbose_name = "task log"
        verbose_name_plural = "task logs"
        ordering = ("-started", "-pk")
        constraints = (
            models.UniqueConstraint(
                fields=("task_id", "attempt", "delivery"), name="celery_parselog_tasklog_delivery"
            ),
        )
        indexes = (
            models.Index(fields=("subject",), name="celery_parselog_subject"),
            models.Index(fields=("task_name",), name="celery_parselog_task_name"),
            models.Index(fields=("state",), name="celery_parselog_state"),
            models.Index(fields=("started",), name="celery_parselog_started"),
        )

    def __str__(self) -> str:
        run = f"{self.task_name or 'task'}[{self.task_id}] attempt {self.attempt}"
        return f"{run} delivery {self.delivery}" if self.delivery > 1 else run

    @property
    def is_stored(self) -> bool:
        """Whether the storage confirmed the log, so it can be read."""
        return self.upload_status == Status.STORED.value and bool(self.key)

    @property
    def duration_seconds(self) -> float | None:
        return self.duration.total_seconds() if isinstance(self.duration, timedelta) else None
