"""``manage.py parselog_recover``: store the logs left in a spool folder, now."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from celery_parselog.conf import ParselogSettings
from celery_parselog.management.shared import progress_due, result_backend
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
        parser.add_argument(
            "--owner-ok",
            action="store_true",
            help="Run as root, sweep a folder that belongs to another user (a worker's), "
            "acting as that user while sweeping. Without it such a folder is refused.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = ParselogSettings()
        spool_dir: Path = options["spool_dir"] or settings.spool_dir
        verbosity: int = options["verbosity"]
        if not spool_dir.is_dir():
            raise CommandError(f"The spool folder {spool_dir} does not exist.")

        def progress(number: int, total: int, outcome: str) -> None:
            if progress_due(number, total, verbosity=verbosity, all_up_to=20, every=50):
                self.stdout.write(f"[{number}/{total}] {outcome}")

        with _as_owner_of(spool_dir, allowed=options["owner_ok"]):
            report = recover_spool(
                spool_dir,
                storage=settings.storage,
                attempts=settings.upload_attempts,
                backoff=settings.upload_backoff,
                backend=result_backend(),
                progress=progress,
                log_format=settings.format,
                key_template=settings.key,
            )
        self.stdout.write(
            f"Stored {len(report.stored)}, left {report.live} of running tasks alone, "
            f"removed {report.removed} empty files, {len(report.failed)} failed"
            + (f", refused {len(report.refused)}." if report.refused else ".")
        )
        if report.refused:
            path, problem = report.refused[0]
            self.stderr.write(
                f"{len(report.refused)} files or folders were refused and left untouched "
                f"(first: {path}: {problem})."
            )
        if report.failed:
            path, error = report.failed[0]
            raise CommandError(
                f"{len(report.failed)} logs could not be stored and stay in {spool_dir} "
                f"(first: {path.name}: {error}). Check that the storage is reachable, "
                "then run this command again."
            )


@contextlib.contextmanager
def _as_owner_of(spool_dir: Path, *, allowed: bool) -> Iterator[None]:
    """Sweep as the folder's owner. Root sweeping a worker's folder as root would turn
    anything planted in it into a write as root, so that needs ``--owner-ok`` and then
    happens with the owner's ids, as the worker itself would have done it."""
    owner = spool_dir.lstat()
    me = os.geteuid()
    if owner.st_uid == me:
        yield
        return
    if not allowed or me != 0:
        raise CommandError(
            f"The spool folder {spool_dir} belongs to uid {owner.st_uid}, not to you "
            f"(uid {me}). Run this command as that user"
            + (", or as root with --owner-ok." if me == 0 else ".")
        )
    groups = os.getgroups()
    os.setgroups([])
    os.setegid(owner.st_gid)
    os.seteuid(owner.st_uid)
    try:
        yield
    finally:
        os.seteuid(me)
        os.setegid(0)
        os.setgroups(groups)
