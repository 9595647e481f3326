"""``manage.py parselog_lost``: mark runs lost whose worker is gone, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from celery_parselog.conf import ParselogSettings
from celery_parselog.lease import Lease
from celery_parselog.lost import find_lost
from celery_parselog.management.shared import result_backend


class Command(BaseCommand):
    help = (
        "Mark every running task log whose worker has not renewed its lease for a whole "
        "lease as lost, pointing at its last checkpoint if one was stored. Live workers do "
        "this on their own; this command is for when none is running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="SECONDS",
            help=f"Judge leases older than this (default: the lease, {Lease.current().seconds:g}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = ParselogSettings()
        if not settings.records:
            raise CommandError(
                "CELERY_PARSELOG_RECORDS is off: without rows there are no leases to judge."
            )
        seconds: float | None = options["older_than"]
        if seconds is not None and seconds < 0:
            raise CommandError("--older-than takes a number of seconds, 0 or more.")
        report = find_lost(backend=result_backend(), storage=settings.storage, seconds=seconds)
        if options["verbosity"] >= 2:
            for key in report.with_checkpoint:
                self.stdout.write(f"lost, at its last checkpoint: {key}")
            for key in report.without_checkpoint:
                self.stdout.write(f"lost, no checkpoint: {key}")
        self.stdout.write(
            f"Marked {report.marked} runs lost ({len(report.with_checkpoint)} at their last "
            f"checkpoint, {len(report.without_checkpoint)} without one); "
            f"{len(report.settled)} had ended and were completed from their entry."
        )
