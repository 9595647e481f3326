"""``manage.py parselog_show TASK_ID``: print a run's stored log, decompressed."""

from __future__ import annotations

import codecs
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from celery_parselog.management.lookup import run_of
from celery_parselog.reading import LogLocation, decompressed_chunks, open_raw


class Command(BaseCommand):
    help = (
        "Print the stored log of a task's run, decompressed. Without --attempt, the last "
        "recorded attempt. Reads the storage with the server's own access, so anyone who "
        "can run manage.py can read every log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task_id", help="The task id, as on the result or the admin page.")
        parser.add_argument(
            "--attempt", type=int, help="Which attempt (1 for the first run, 2 for its retry)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        row = run_of(options["task_id"], options["attempt"])
        if not row.is_stored:
            detail = f": {row.upload_error}" if row.upload_error else ""
            raise CommandError(
                f"The log of {row} is not stored (upload {row.upload_status}{detail}). "
                f"A failed upload waits in the spool folder of {row.hostname or 'its worker'} "
                "until recovery stores it."
            )
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            with open_raw(LogLocation(row.storage, row.key)) as raw:
                for data in decompressed_chunks(raw):
                    self.stdout.write(decoder.decode(data), ending="")
        except FileNotFoundError as error:
            raise CommandError(
                f"The log of {row} is not in the storage {row.storage!r} at {row.key} "
                "(it may have been purged)."
            ) from error
        self.stdout.write(decoder.decode(b"", final=True), ending="")
