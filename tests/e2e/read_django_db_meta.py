"""A separate client process: waits for a task through the django-db result backend and
prints its state, its ``TaskResult.meta`` and what ``log_info`` returns, as JSON."""

from __future__ import annotations

import dataclasses
import json
import sys

import django

django.setup()

from celery.result import AsyncResult  # noqa: E402
from django_celery_results.models import TaskResult  # noqa: E402

from celery_parselog import log_info  # noqa: E402
from tests.e2e.proj import app  # noqa: E402


def main(task_id: str) -> None:
    result: AsyncResult[object] = AsyncResult(task_id, app=app)
    result.get(timeout=60, propagate=False)
    info = log_info(result, wait=20)
    row = TaskResult.objects.get(task_id=task_id)
    json.dump(
        {
            "state": result.state,
            "row_meta": json.loads(row.meta),
            "log_info": dataclasses.asdict(info) if info else None,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1])
