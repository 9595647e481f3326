"""In-process runs of the benchmarks start the way a worker starts, Django fixup included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.child import run_python
from tests.servers import redis_server

pytestmark = pytest.mark.e2e

_CHILD = """
import json, sys
from pathlib import Path
from benchmarks.inprocess import boot, task_runner

app = boot(Path(sys.argv[1]), capture=False)
from django.db import connection

connection.ensure_connection()
opened = connection.connection is not None
task_runner(app, "tiny")(1)
print(json.dumps({"opened": opened, "open_after_task": connection.connection is not None}))
"""


def test_a_task_run_in_process_closes_the_database_connection_like_a_worker(
    tmp_path: Path,
) -> None:
    """Celery's Django fixup is installed in-process: with the default CONN_MAX_AGE, a
    connection open before a task is closed around it, so each task pays for a new one
    as it does in a real worker."""
    with redis_server() as url:
        completed = run_python(
            "-c",
            _CHILD,
            str(tmp_path),
            timeout=120,
            BENCH_REDIS_URL=url,
            BENCH_DB=str(tmp_path / "db.sqlite3"),
            AWS_CONFIG_FILE=str(tmp_path / "missing"),
        )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report == {"opened": True, "open_after_task": False}
