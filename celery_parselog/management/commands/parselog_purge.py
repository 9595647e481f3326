"""``manage.py parselog_purge --older-than DAYS``: delete old runs' stored logs and rows."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.files.storage import InvalidStorageError, storages
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from celery_parselog.management.shared import progress_due
from celery_parselog.models import TaskLog


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if days < 0:
        raise argparse.ArgumentTypeError("the number of days cannot be negative")
    return days


class Command(BaseCommand):
    help = (
        "Delete the stored logs and the TaskLog rows of runs started more than DAYS days "
        "ago. A row is deleted only once its log is gone from the storage, so a failed "
        "deletion can be retried by running the command again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=_days,
            required=True,
            metavar="DAYS",
            help="Purge runs that started more than this many days ago.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int = options["older_than"]
        dry_run: bool = options["dry_run"]
        verbosity: int = options["verbosity"]
        cutoff = timezone.now() - timedelta(days=days)
        runs = TaskLog.objects.filter(started__lt=cutoff).order_by("started", "pk")
        total = runs.count()
        verb = "Would delete" if dry_run else "Deleting"
        self.stdout.write(f"{verb} {total} runs started before {cutoff:%Y-%m-%d %H:%M} UTC.")
        deleted = 0
        failed: list[str] = []
        for number, row in enumerate(runs.iterator(chunk_size=500), start=1):
            outcome = self._purge(row, dry_run)
            if outcome.startswith("failed"):
                failed.append(f"{row.task_id} (attempt {row.attempt}): {outcome}")
            else:
                deleted += 1
            if progress_due(number, total, verbosity=verbosity, all_up_to=50, every=100):
                self.stdout.write(f"[{number}/{total}] {row.key or row.task_id}: {outcome}")
        summary = "would be deleted" if dry_run else "deleted"
        self.stdout.write(f"{deleted} runs {summary}, {len(failed)} failed.")
        if failed:
            raise CommandError(
                f"{len(failed)} logs could not be deleted and their rows were kept "
                f"(first: {failed[0]}). Check the storage, then run this command again."
            )

    @staticmethod
    def _purge(row: TaskLog, dry_run: bool) -> str:
        # A key is deleted whatever the upload status: a checkpoint may have stored
        # part of a log whose final upload never came. Deleting a missing key is a no-op.
        has_object = bool(row.key)
        if dry_run:
            return "log and row" if has_object else "row (no log key)"
        if has_object:
            try:
                storages[row.storage].delete(row.key)
            except InvalidStorageError:
                return f"failed: the storage {row.storage!r} is not configured"
            except Exception as error:  # noqa: BLE001 - storages raise anything, from any SDK
                return f"failed: {type(error).__name__}: {error}"
        row.delete()
        return "log and row deleted" if has_object else "row deleted (no log key)"
