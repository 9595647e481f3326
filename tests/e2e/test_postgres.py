"""End to end on PostgreSQL: a real prefork worker whose Django database, TaskLog rows and
django-db result backend (django-celery-results) live on a PostgreSQL server of the test's own."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from celery_parselog import LogInfo
from tests.e2e.conftest import Worker, django_db_meta
from tests.e2e.test_worker_capture import assert_run_log
from tests.servers import PostgresServer

pytestmark = pytest.mark.e2e

PARSE = "tests.e2e.proj.tasks.parse"


def read_back(worker: Worker, task_id: str) -> dict[str, Any]:
    return django_db_meta(worker, task_id)


def test_prefork_worker_on_postgres_writes_rows_and_django_db_metadata(
    start_worker: Any, s3_endpoint: str, postgres_env: dict[str, str]
) -> None:
    """Each run's entry reaches TaskResult.meta and its TaskLog row on PostgreSQL, and both
    point at the object stored in S3, for a run that succeeds and one that fails."""
    worker = start_worker(
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        env={**postgres_env, "E2E_RESULT_BACKEND": "django-db"},
    )
    ok = worker.send(PARSE, 60).id
    failed = worker.send(PARSE, 61, fail=True).id

    report = read_back(worker, ok)
    assert report["database"] == "postgresql"
    assert report["state"] == "SUCCESS"
    assert report["row_meta"]["parselog"]["status"] == "stored"
    info = LogInfo.from_entry(report["log_info"])
    assert info.key == f"parsing_logs/60/None/{ok}-1.log.gz"
    assert_run_log(s3_endpoint, info, 60)
    [row] = report["tasklog"]
    assert row["state"] == "succeeded"
    assert row["task_state"] == "SUCCESS"
    assert row["upload_status"] == "stored"
    assert (row["key"], row["uri"], row["bytes"], row["sha256"]) == (
        info.key,
        info.uri,
        info.bytes,
        info.sha256,
    )
    assert row["complete"] is True

    report = read_back(worker, failed)
    assert report["state"] == "FAILURE"
    [row] = report["tasklog"]
    assert row["state"] == "failed"
    assert row["upload_status"] == "stored"
    assert row["key"] == f"parsing_logs/61/None/{failed}-1.log.gz"


def test_running_run_is_visible_on_postgres_while_it_runs(
    start_worker: Any, postgres: PostgresServer, postgres_env: dict[str, str]
) -> None:
    """The row of a run that goes on is committed soon after it starts (the worker holds a
    start a quarter of a second, for an end that may follow): another connection to the
    PostgreSQL database sees it ``running`` while the task is still running."""
    worker = start_worker("--pool", "prefork", "--concurrency", "1", env=postgres_env)
    result = worker.send("tests.e2e.proj.tasks.slow_parse", 62, seconds=4.0)
    marker = worker.state_dir / "running-62"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.05)
    database = json.loads(postgres_env["E2E_DATABASE"])["NAME"]
    deadline = time.monotonic() + 2
    with psycopg.connect(**postgres.connect_args(database)) as connection:
        while True:
            states = connection.execute(
                "SELECT state, upload_status FROM celery_parselog_tasklog WHERE task_id = %s",
                (result.id,),
            ).fetchall()
            if states or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert not result.ready()
    assert states == [("running", "pending")]
    assert result.get(timeout=60) == 62
