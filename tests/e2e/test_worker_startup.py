"""What a real worker and ``manage.py check`` say about celery-parselog when they start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, run_python

pytestmark = pytest.mark.e2e

MISTAKES = "tests.e2e.proj.settings_mistakes"


def project_env(tmp_path: Path, redis_url: str, settings_module: str) -> dict[str, str]:
    """The environment of a process of the end-to-end project, with its own state folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CELERY_", "DJANGO_"))}
    env.update(
        PYTHONPATH=str(REPO),
        DJANGO_SETTINGS_MODULE=settings_module,
        E2E_REDIS_URL=redis_url,
        E2E_STATE_DIR=str(tmp_path),
    )
    return env


def test_worker_log_says_capture_is_on(start_worker: Any) -> None:
    """A capturing worker's own log names the tasks, storage, key and spool folder it uses."""
    worker = start_worker()
    lines = [line for line in worker.log_text().splitlines() if "celery-parselog" in line]
    assert len(lines) == 1, worker.log_text()
    line = lines[0]
    assert "INFO/MainProcess] celery-parselog captures in this worker: tasks " in line
    for part in [
        " tests.e2e.proj.tasks.parse,",
        " tests.e2e.proj.tasks.retried_parse,",
        "(CELERY_PARSELOG_TASKS tests.e2e.proj.tasks.parse, tests.e2e.proj.tasks.*_parse)",
        "storage 'default' (storages.backends.s3.S3Storage)",
        "key parsing_logs/{data_file_id}/{reparse_id}/{task_id}-{attempt}.log",
        f"spool folder {worker.state_dir / 'spool'}",
    ]:
        assert part in line
    assert "tests.e2e.proj.tasks.unselected" not in line


def run_worker(tmp_path: Path, redis_url: str, settings_module: str) -> tuple[int, str]:
    """Run ``celery worker`` of the project until it exits; its exit status and its log."""
    done = run_python(
        project_env(tmp_path, redis_url, settings_module),
        "-m",
        "celery",
        "-A",
        "tests.e2e.proj",
        "worker",
        "--loglevel",
        "INFO",
    )
    return done.returncode, done.stdout + done.stderr


def test_worker_with_wrong_settings_refuses_to_start(tmp_path: Path, redis_url: str) -> None:
    """Capture on with wrong settings: ERRORs with ids and hints in the log, then exit 78."""
    status, log = run_worker(tmp_path, redis_url, MISTAKES)
    assert status == 78, log
    errors = [line for line in log.splitlines() if "ERROR/MainProcess]" in line]
    expected = [
        "CELERY_PARSELOG_MAX_BYTES: '128MB' is not 0 or a whole number of bytes",
        "[celery_parselog.E008] Set CELERY_PARSELOG_MAX_BYTES to ",
        "CELERY_PARSELOG_REDACT: 'iban'",
        "CELERY_PARSELOG_REDACT: '(unclosed'",
    ]
    for part in expected:
        assert any(part in line for line in errors), log
    assert sum("[celery_parselog.E011]" in line for line in errors) == 2
    assert any(
        "CRITICAL/MainProcess] celery-parselog: this worker does not start" in line
        for line in log.splitlines()
    )
    assert "celery-parselog is off" not in log
    assert "ready." not in log  # it never took a task


def test_worker_with_wrong_task_fields_refuses_to_start(tmp_path: Path, redis_url: str) -> None:
    """Settings valid on their own but a key field no task has: E002 in the log, no start."""
    status, log = run_worker(tmp_path, redis_url, "tests.e2e.proj.settings_key_typo")
    assert status == 78, log
    assert any(
        "ERROR/MainProcess] CELERY_PARSELOG_KEY names datafile_id, which task "
        "'tests.e2e.proj.tasks.parse' does not have. [celery_parselog.E002]" in line
        for line in log.splitlines()
    ), log
    assert "ready." not in log


def test_manage_py_check_loads_the_tasks_and_reports_every_mistake(
    tmp_path: Path, redis_url: str
) -> None:
    """``django-admin check`` on the project finds its tasks and reports each mistake by id."""
    done = run_python(project_env(tmp_path, redis_url, MISTAKES), "-m", "django", "check")
    report = done.stdout + done.stderr
    assert done.returncode == 1, report
    for part in [
        "(celery_parselog.E002) CELERY_PARSELOG_KEY names datafile_id, which task "
        "'tests.e2e.proj.tasks.parse' does not have.",
        "(celery_parselog.E008) CELERY_PARSELOG_MAX_BYTES: '128MB'",
        "(celery_parselog.E011) CELERY_PARSELOG_REDACT: 'iban'",
        "(celery_parselog.E011) CELERY_PARSELOG_REDACT: '(unclosed'",
        "(celery_parselog.W002) CELERY_PARSELOG_TASKS: 'tests.e2e.proj.tasks.nothing_*' "
        "matches no registered task.",
    ]:
        assert part in report
