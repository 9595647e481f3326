"""The end-to-end project's settings with one mistake only tasks reveal: a key field no task has."""

from __future__ import annotations

from tests.e2e.proj.settings import *  # noqa: F403

CELERY_PARSELOG_KEY = "parsing_logs/{datafile_id}/{task_id}-{attempt}.log"
