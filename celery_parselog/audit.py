"""The audit trail of log reads: who read which run's log, how, and when.

Logs may hold data about people, and systems that keep such data are expected to say
who looked at it. Every admin page that shows a log's content (the preview on a
run's page, the whole-log page, a comparison) and every download writes a
:class:`LogRead`. Entries belong to their run: deleting a run's row, as
``parselog_purge`` does once the log is gone, deletes its entries too.
"""

from __future__ import annotations

from django.db import models
from django.http import HttpRequest
from django.utils import timezone

__all__ = ["LogRead", "record_read"]


class LogRead(models.Model):
    """One reading of one run's log by one user."""

    class Kind(models.TextChoices):
        PREVIEW = "preview", "preview"
        DOWNLOAD = "download", "download"
        WHOLE_LOG = "log", "whole log"
        COMPARE = "compare", "comparison"

    task_log = models.ForeignKey(
        "celery_parselog.TaskLog", on_delete=models.CASCADE, related_name="reads"
    )
    # Text, not a foreign key: an entry must still name its reader after the account is
    # deleted, and the table must not depend on which user model a project has.
    username = models.CharField(max_length=150, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    detail = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        verbose_name = "log read"
        verbose_name_plural = "log reads"
        ordering = ("-at", "-pk")
        indexes = (models.Index(fields=("at",), name="celery_parselog_read_at"),)

    def __str__(self) -> str:
        return f"{self.username or 'someone'} read {self.task_log_id} ({self.kind}) at {self.at}"


def record_read(request: HttpRequest, task_log: models.Model, kind: str, detail: str = "") -> None:
    """Note that the user of ``request`` read ``task_log``'s log as ``kind``.

    Called before the content is sent: a database that cannot take the entry fails
    the request rather than let a read go unrecorded.
    """
    user = request.user
    LogRead.objects.create(
        task_log=task_log,
        username=user.get_username() if user.is_authenticated else "",
        kind=kind,
        detail=detail[:255],
    )
