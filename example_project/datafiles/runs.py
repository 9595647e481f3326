"""Starting parse runs and recording, from each finished task's result, where its log is.

Only celery-parselog's public API is used: :func:`celery_parselog.log_info` reads
the ``parselog`` entry that the worker put on the task's result.
"""

from __future__ import annotations

from typing import Any

from celery_parselog import log_info
from django.db.models import Max

from datafiles.models import DataFile, ParseRun
from datafiles.tasks import parse

__all__ = ["next_reparse_id", "record_outcome", "start_parse"]

# Counted as errors in a run's log: what needs a person to look.
_ERROR_LEVELS = ("ERROR", "CRITICAL")


def next_reparse_id(data_file: DataFile) -> int | None:
    """``None`` for a file never parsed, else one more than its latest re-parse."""
    runs = data_file.parse_runs.all()
    if not runs.exists():
        return None
    latest = runs.aggregate(latest=Max("reparse_id"))["latest"]
    return (latest or 0) + 1


def start_parse(
    data_file: DataFile, *, reparse_id: int | None = None, queue: str | None = None
) -> ParseRun:
    """Send the parse task for ``data_file`` and keep a row for the run."""
    options: dict[str, Any] = {"queue": queue} if queue else {}
    result = parse.apply_async((data_file.pk,), {"reparse_id": reparse_id}, **options)
    run: ParseRun = ParseRun.objects.create(
        task_id=result.id, data_file=data_file, reparse_id=reparse_id, state=result.state
    )
    return run


def record_outcome(run: ParseRun, *, wait: float = 0.0) -> ParseRun:
    """Copy the task's state and its log's whereabouts onto ``run``, and save it.

    ``wait`` is how long to keep reading while the log is still being stored,
    which matters right after the task finished.
    """
    result = parse.AsyncResult(run.task_id)
    run.state = result.state
    info = log_info(result, wait=wait)
    if info is not None:
        run.log_status = info.status
        run.log_storage = info.storage
        run.log_uri = info.uri
        run.log_key = info.key
        run.log_bytes = info.bytes
        run.warnings = info.counts.get("WARNING", 0)
        run.errors = sum(info.counts.get(level, 0) for level in _ERROR_LEVELS)
    run.save()
    return run
