"""The parse task. It is an ordinary Celery task: nothing here knows its log is captured."""

from __future__ import annotations

import logging

from celery import shared_task

from datafiles.models import DataFile
from datafiles.parsers import parse_data_file
from datafiles.utils import log

logger = logging.getLogger(__name__)


@shared_task
def parse(data_file_id: int, reparse_id: int | None = None) -> dict[str, int]:
    """Parse one uploaded data file and return how many records it held, kept and rejected.

    ``reparse_id`` tells a later parse of the same file from the first one; it is
    ``None`` the first time.
    """
    data_file: DataFile = DataFile.objects.get(pk=data_file_id)
    log(f"parse of data file {data_file_id} started (reparse {reparse_id})")
    logger.info("Reading %s from storage", data_file.file.name)
    with data_file.file.open("rb") as stream:
        content: bytes = stream.read()
    print(f"{data_file.filename}: {len(content)} bytes read")
    summary = parse_data_file(
        content, name=data_file.filename, year=data_file.year, quarter=data_file.quarter
    )
    log(f"parse of data file {data_file_id} finished: {summary.accepted} records accepted")
    return summary.as_dict()
