"""A separate client process: waits for a task through the django-db result backend and
prints its state, its ``TaskResult.meta``, what ``log_info`` returns and the run's
``TaskLog`` row, as JSON. It reads the worker's own database, whatever its engine."""

from __future__ import annotations

import dataclasses
import json
import sys

import django

django.setup()

from celery.result import AsyncResult  # noqa: E402
from django.db import connection  # noqa: E402
from django_celery_results.models import TaskResult  # noqa: E402

from celery_parselog import log_info  # noqa: E402
from celery_parselog.models import TaskLog  # noqa: E402
from tests.e2e.proj import app  # noqa: E402


def main(task_id: str) -> None:
    result: AsyncResult[object] = AsyncResult(task_id, app=app)
    result.get(timeout=60, propagate=False)
    info = log_info(result, wait=20)
    row = TaskResult.objects.get(task_id=task_id)
    runs = TaskLog.objects.filter(task_id=task_id).values(
        "state", "task_state", "upload_status", "key", "uri", "bytes", "sha256", "complete"
    )
    json.dump(
        {
            "state": result.state,
            "row_meta": json.loads(row.meta),
            "log_info": dataclasses.asdict(info) if info else None,
            "tasklog": list(runs),
            "database": connection.vendor,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1])
