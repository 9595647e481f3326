"""End to end: a worker whose host vanishes with its disk, as a lost container's does. Another
worker, with a name and a spool folder of its own, marks its run lost at its last checkpoint.
Real workers, real Redis, moto's S3 server, and one database shared by both workers: SQLite,
and a real PostgreSQL server, whose clock judges the leases there."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from celery_parselog import log_info
from celery_parselog.lease import Lease
from tests.e2e.conftest import BUCKET, Worker, s3_client, wait_for

SLOW = "tests.e2e.proj.tasks.slow_parse"
# The workers' lease, shortened so that the test need not wait the default 76 s.
LEASE_SECONDS = 4.0


ROW_FIELDS = (
    "SELECT state, complete, incomplete_reason, upload_status, key, bytes, worker, heartbeat"
    " FROM celery_parselog_tasklog WHERE task_id = {}"
)
RowReader = Callable[[str], "dict[str, Any] | None"]


def sqlite_rows(database: Path) -> RowReader:
    """Read a run's TaskLog row straight from the workers' SQLite database."""

    def read(task_id: str) -> dict[str, Any] | None:
        with sqlite3.connect(database, timeout=10) as connection:
            connection.row_factory = sqlite3.Row
            found = connection.execute(ROW_FIELDS.format("?"), (task_id,)).fetchone()
        return dict(found) if found is not None else None

    return read


def postgres_rows(connect_args: dict[str, Any]) -> RowReader:
    """Read a run's TaskLog row straight from the workers' PostgreSQL database."""

    def read(task_id: str) -> dict[str, Any] | None:
        with psycopg.connect(**connect_args, row_factory=dict_row) as connection:
            found = connection.execute(ROW_FIELDS.format("%s"), (task_id,)).fetchone()
        return dict(found) if found is not None else None

    return read


def host_with(start_worker: Any, env: dict[str, str], spool: Path, state_dir: Path) -> Worker:
    """A worker standing for a host of its own: its own spool folder, the shared database."""
    worker: Worker = start_worker(
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        env={**env, "E2E_SPOOL_DIR": str(spool)},
        state_dir=state_dir,
    )
    return worker


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[dict[str, str], RowReader]:
    """The workers' environment for the database they share, and a reader of its rows."""
    if request.param == "sqlite":
        return {}, sqlite_rows(tmp_path / "shared" / "db.sqlite3")
    env: dict[str, str] = request.getfixturevalue("postgres_env")
    server = request.getfixturevalue("postgres")
    name = json.loads(env["E2E_DATABASE"])["NAME"]
    return env, postgres_rows(server.connect_args(name))


def test_run_of_a_vanished_worker_is_marked_lost_at_its_last_checkpoint(
    start_worker: Any,
    s3_endpoint: str,
    tmp_path: Path,
    shared_database: tuple[dict[str, str], RowReader],
) -> None:
    """Worker A (own spool folder, checkpoints every second) is SIGKILLed mid-run with its
    child, and its spool folder deleted. Worker B, another node name and spool folder on
    the same database, marks the run lost within the lease's documented bound; the entry
    and the row point at the last checkpoint, readable in S3, with complete false."""
    shared = tmp_path / "shared"
    shared.mkdir()
    spool_a, spool_b = shared / "spool-a", shared / "spool-b"
    database_env, row_of = shared_database
    common = {
        "E2E_CHECKPOINT_SECONDS": "1",
        "E2E_LEASE_SECONDS": str(LEASE_SECONDS),
        **database_env,
    }

    doomed = host_with(start_worker, common, spool_a, shared)
    survivor = host_with(start_worker, common, spool_b, shared)
    assert doomed.name != survivor.name

    result = doomed.send(SLOW, 81, seconds=300.0)
    marker = shared / "running-81"
    child = int(wait_for(lambda: marker.exists() and marker.read_text(), 60, "the task to start"))
    key = f"parsing_logs/81/None/{result.id}-1.log.gz"
    client = s3_client(s3_endpoint)
    lines = [f"INFO e2eproj.records: slow record {n} of file 81" for n in range(3)]

    def checkpoint() -> list[str] | None:
        try:
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        text = gzip.decompress(body).decode().splitlines()
        return text if text[:3] == lines else None

    wait_for(checkpoint, 30, "a checkpoint of the running task")
    running = row_of(result.id)
    assert running is not None and running["state"] == "running"
    assert running["worker"].startswith(doomed.name + "#")
    assert running["heartbeat"] is not None

    # The container goes: every process of worker A at once, then its disk.
    doomed.process.send_signal(signal.SIGKILL)
    os.kill(child, signal.SIGKILL)
    killed = time.monotonic()
    doomed.process.wait(10)
    shutil.rmtree(spool_a)

    bound = Lease(LEASE_SECONDS).bound
    # The bound holds from the worker's death; the margin is for this test's own polling
    # and a loaded machine, not for the mechanism.
    lost = wait_for(
        lambda: (row := row_of(result.id)) and row["state"] == "lost" and row,
        bound + 10,
        "the run to be marked lost",
    )
    elapsed = time.monotonic() - killed
    print(f"marked lost {elapsed:.2f} s after the kill (documented bound {bound:g} s)")
    assert lost["complete"] == 0
    assert lost["incomplete_reason"] == "worker lost"
    assert lost["upload_status"] == "stored"
    assert lost["key"] == key

    info = log_info(result)
    assert info is not None
    assert info.status == "stored"
    assert info.key == key
    assert info.complete is False
    assert info.incomplete_reason == "worker lost"
    stored = client.get_object(Bucket=BUCKET, Key=info.key)["Body"].read()
    assert info.bytes == lost["bytes"] == len(stored)
    assert gzip.decompress(stored).decode().splitlines()[:3] == lines
    assert "the run is marked lost" in survivor.log_text()
