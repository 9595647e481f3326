"""The end-to-end project's settings with the mistakes a new user makes, for the start-up tests."""

from __future__ import annotations

from tests.e2e.proj.settings import *  # noqa: F403

CELERY_PARSELOG_MAX_BYTES = "128MB"  # type: ignore[assignment]  # the mistake under test
CELERY_PARSELOG_REDACT = ["iban", "(unclosed"]
CELERY_PARSELOG_KEY = "parsing_logs/{datafile_id}/{task_id}-{attempt}.log"
CELERY_PARSELOG_TASKS = ["tests.e2e.proj.tasks.parse", "tests.e2e.proj.tasks.nothing_*"]
