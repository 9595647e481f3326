"""``manage.py parselog_recover``: store the logs left in a spool folder, now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from celery_parselog.conf import ParselogSettings
from celery_parselog.recovery import recover_spool


class Command(BaseCommand):
    help = (
        "Store every orphaned log in the spool folder (failed uploads, killed workers) "
        "under the key planned for it. Logs of runs still going on are left alone, so "
        "this is safe beside running workers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--spool-dir",
            type=Path,
            help="Folder to sweep (default: CELERY_PARSELOG_SPOOL_DIR).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = ParselogSettings()
        spool_dir: Path = options["spool_dir"] or settings.spool_dir
        verbosity: int = options["verbosity"]
        if not spool_dir.is_dir():
            raise CommandError(f"The spool folder {spool_dir} does not exist.")

        def progress(number: int, total: int, outcome: str) -> None:
            if verbosity >= 1 and (verbosity >= 2 or total <= 20 or number % 50 == 0):
                self.stdout.write(f"[{number}/{total}] {outcome}")

        report = recover_spool(
            spool_dir,
            storage=settings.storage,
            attempts=settings.upload_attempts,
            backoff=settings.upload_backoff,
            backend=_result_backend(),
            progress=progress,
        )
        self.stdout.write(
            f"Stored {len(report.stored)}, left {report.live} of running tasks alone, "
            f"removed {report.removed} empty files, {len(report.failed)} failed."
        )
        if report.failed:
            path, error = report.failed[0]
            raise CommandError(
                f"{len(report.failed)} logs could not be stored and stay in {spool_dir} "
                f"(first: {path.name}: {error}). Check that the storage is reachable, "
                "then run this command again."
            )


def _result_backend() -> Any:
    """The project's Celery result backend, to record where recovered logs went."""
    from celery import current_app

    try:
        return current_app.backend
    except Exception:  # noqa: BLE001 - logs are stored even when results cannot be told
        return None
