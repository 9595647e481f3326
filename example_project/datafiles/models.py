"""Uploaded data files, and one row per parse run with where that run's log is stored."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.db import models

__all__ = ["DataFile", "ParseRun"]


def upload_to(instance: DataFile, filename: str) -> str:
    """Files are kept by period and section, the way people look for them."""
    return f"datafiles/{instance.year}/Q{instance.quarter}/{instance.section}/{filename}"


class DataFile(models.Model):
    """One uploaded file of one section for one quarter."""

    QUARTERS = tuple((quarter, f"Q{quarter}") for quarter in range(1, 5))

    file = models.FileField(upload_to=upload_to)
    year = models.PositiveSmallIntegerField()
    quarter = models.PositiveSmallIntegerField(choices=QUARTERS)
    section = models.CharField(max_length=40)
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-year", "-quarter", "section", "-uploaded_at")

    def __str__(self) -> str:
        return f"{self.year} Q{self.quarter} {self.section} ({self.filename})"

    @property
    def filename(self) -> str:
        """The file's own name, without the folders it is stored under."""
        return PurePosixPath(self.file.name or "").name


class ParseRun(models.Model):
    """One parse of one data file: its Celery task, its outcome, and where its log is.

    The log fields are filled from the task's result once it has finished, so a
    support person can open the log of exactly this run, even after a re-parse.
    """

    task_id = models.CharField(max_length=255, unique=True)
    data_file = models.ForeignKey(DataFile, on_delete=models.CASCADE, related_name="parse_runs")
    reparse_id = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=20, default="PENDING")
    log_status = models.CharField(max_length=20, blank=True)
    log_storage = models.CharField(max_length=100, blank=True)
    log_uri = models.CharField(max_length=1024, blank=True)
    log_key = models.CharField(max_length=1024, blank=True)
    log_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    warnings = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    submitted_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-submitted_at",)

    def __str__(self) -> str:
        return f"parse {self.task_id} of data file {self.data_file_id}"
