"""End to end: real ``celery worker`` subprocesses, Redis as broker and result backend,
and logs stored in S3 served over HTTP by moto, read back by a separate client."""

from __future__ import annotations

import gzip
import hashlib
import re
import time
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from celery_parselog import LogInfo, log_info
from tests.e2e.conftest import BUCKET, Worker, django_db_meta, s3_client

pytestmark = pytest.mark.e2e

PARSE = "tests.e2e.proj.tasks.parse"
_TRACE_SUCCESS = re.compile(
    r"^INFO celery\.app\.trace: Task tests\.e2e\.proj\.tasks\.parse\[[0-9a-f-]+\] succeeded in "
)


def expected_lines(file_id: int, lines: int = 2) -> list[str]:
    """What one run of ``parse`` writes through its loggers and ``print()``, in order."""
    out = [f"INFO e2eproj.task: parse start {file_id}"]
    for number in range(lines):
        out += [
            f"INFO e2eproj.records: record {number} of file {file_id}",
            f"WARNING e2eproj.parsers: bad record {number} in file {file_id}",
            f"INFO root: progress {number} file {file_id}",
            f"INFO stdout: printed {number} file {file_id}",
        ]
    return out


def send_parse(worker: Worker, file_id: int, **kwargs: Any) -> AsyncResult[Any]:
    return worker.send(PARSE, file_id, **kwargs)


def stored_object(endpoint: str, info: LogInfo) -> tuple[bytes, dict[str, Any]]:
    response = s3_client(endpoint).get_object(Bucket=BUCKET, Key=info.key)
    return response["Body"].read(), response


def stored_lines(endpoint: str, info: LogInfo) -> list[str]:
    body, response = stored_object(endpoint, info)
    assert response["ContentEncoding"] == "gzip"
    assert response["ContentType"].startswith("text/plain")
    assert hashlib.sha256(body).hexdigest() == info.sha256
    assert len(body) == info.bytes
    return gzip.decompress(body).decode("utf-8").splitlines()


def finished_info(result: AsyncResult[Any]) -> LogInfo:
    result.get(timeout=60, propagate=False)
    info = log_info(result, wait=20)
    assert info is not None, "the result carries no parselog entry"
    assert info.status == "stored", info
    return info


def returned(result: AsyncResult[Any]) -> dict[str, Any]:
    """What the ``parse`` task returned, typed for the checks below."""
    value = result.result
    assert isinstance(value, dict), value
    return value


def assert_run_log(endpoint: str, info: LogInfo, file_id: int, lines: int = 2) -> None:
    got = stored_lines(endpoint, info)
    assert got[:-1] == expected_lines(file_id, lines)
    assert _TRACE_SUCCESS.match(got[-1]), got[-1]


def spool_files(worker: Worker) -> list[Path]:
    spool = worker.state_dir / "spool"
    return sorted(spool.iterdir()) if spool.exists() else []


def spool_emptied(worker: Worker, timeout: float = 10.0) -> list[Path]:
    """The spool's files once it emptied, or what is left after ``timeout``: a run's files
    are removed by the worker's background writer, just after its entry is published."""
    deadline = time.monotonic() + timeout
    while (left := spool_files(worker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_solo_worker_stores_each_run_and_reparse_under_its_own_key(
    start_worker: Any, s3_endpoint: str
) -> None:
    """A solo worker stores one object per run; a re-parse gets a new key beside the first."""
    worker = start_worker("--pool", "solo")
    first = send_parse(worker, 7)
    first_info = finished_info(first)
    again = send_parse(worker, 7, reparse_id=1)
    again_info = finished_info(again)

    assert first_info.key == f"parsing_logs/7/None/{first.id}-1.log.gz"
    assert again_info.key == f"parsing_logs/7/1/{again.id}-1.log.gz"
    assert first_info.uri == f"s3://{BUCKET}/{first_info.key}"
    assert "?" not in first_info.uri and "Signature" not in first_info.uri
    assert first_info.storage == "default"
    assert first_info.attempt == 1
    assert first_info.counts == {"INFO": 8, "WARNING": 2}
    assert_run_log(s3_endpoint, first_info, 7)
    assert_run_log(s3_endpoint, again_info, 7)
    # The task's own result is what the task returned, untouched.
    assert returned(first)["file"] == 7
    assert first.state == "SUCCESS"
    assert spool_emptied(worker) == []
    # The project's own handlers kept working: the rotating file got the parser lines.
    parsers_log = (worker.state_dir / "parsers.log").read_text().splitlines()
    assert "WARNING e2eproj.parsers: bad record 1 in file 7" in parsers_log


def test_failing_run_keeps_its_traceback_and_its_state(start_worker: Any, s3_endpoint: str) -> None:
    """A task that raises stays FAILURE with its exception, and its log holds the traceback."""
    worker = start_worker("--pool", "solo")
    result = send_parse(worker, 9, fail=True)
    info = finished_info(result)

    assert result.state == "FAILURE"
    assert isinstance(result.result, ValueError)
    assert str(result.result) == "corrupt file 9"
    lines = stored_lines(s3_endpoint, info)
    assert lines[: len(expected_lines(9))] == expected_lines(9)
    assert any(
        line.startswith("ERROR celery.app.trace: Task tests.e2e.proj.tasks.parse[")
        for line in lines
    )
    assert "Traceback (most recent call last):" in lines
    assert lines[-1] == "ValueError: corrupt file 9"
    assert info.counts["ERROR"] == 1


def test_prefork_children_each_store_their_run(start_worker: Any, s3_endpoint: str) -> None:
    """Prefork with one task per child: every run, in a fresh child, is stored correctly."""
    worker = start_worker("--pool", "prefork", "--concurrency", "2", "--max-tasks-per-child", "1")
    results = {file_id: send_parse(worker, file_id, lines=3) for file_id in range(20, 24)}
    pids = set()
    for file_id, result in results.items():
        info = finished_info(result)
        assert info.key == f"parsing_logs/{file_id}/None/{result.id}-1.log.gz"
        assert_run_log(s3_endpoint, info, file_id, lines=3)
        pids.add(returned(result)["pid"])
    assert len(pids) == 4, "each task should have run in a child of its own"
    assert spool_emptied(worker) == []


@pytest.mark.parametrize("pool", ["threads", "gevent"])
def test_concurrent_pool_keeps_overlapping_runs_apart(
    pool: str, start_worker: Any, s3_endpoint: str
) -> None:
    """Under threads and gevent, runs that overlap in one process never see each other's records."""
    worker = start_worker("--pool", pool, "--concurrency", "4")
    results = {
        file_id: send_parse(worker, file_id, lines=6, pause=0.05) for file_id in range(30, 38)
    }
    spans = []
    for file_id, result in results.items():
        info = finished_info(result)
        assert_run_log(s3_endpoint, info, file_id, lines=6)
        run = returned(result)
        spans.append((run["started"], run["ended"], run["pid"]))
    assert len({pid for *_, pid in spans}) == 1, "all runs should share one process"
    overlapping = sum(
        1
        for index, (start, end, _) in enumerate(spans)
        for other_start, other_end, _ in spans[index + 1 :]
        if start < other_end and other_start < end
    )
    assert overlapping >= 3, "the runs did not overlap, so isolation was not exercised"


def test_unselected_task_gets_no_log(start_worker: Any) -> None:
    """A task outside CELERY_PARSELOG_TASKS gets no entry, no object and no spool file."""
    worker = start_worker("--pool", "solo")
    result = worker.send("tests.e2e.proj.tasks.unselected", 5)
    assert result.get(timeout=60) == 5
    assert log_info(result, wait=1) is None
    assert spool_files(worker) == []


def test_worker_option_overrides_the_setting(start_worker: Any) -> None:
    """--no-parselog turns capture off despite the setting; --parselog turns it on without it."""
    off = start_worker("--pool", "solo", "--no-parselog", env={"E2E_PARSELOG_ENABLED": "1"})
    result = send_parse(off, 40)
    result.get(timeout=60)
    assert log_info(result, wait=1) is None

    on = start_worker("--pool", "solo", "--parselog", env={"E2E_PARSELOG_ENABLED": "0"})
    result = send_parse(on, 41)
    assert finished_info(result).key.startswith("parsing_logs/41/None/")


def test_setting_off_means_no_capture(start_worker: Any) -> None:
    """Without the option, CELERY_PARSELOG_ENABLED = False leaves the worker uncaptured."""
    worker = start_worker("--pool", "solo", env={"E2E_PARSELOG_ENABLED": "0"})
    result = send_parse(worker, 42)
    result.get(timeout=60)
    assert log_info(result, wait=1) is None


def test_django_db_backend_carries_the_entry_in_task_result_meta(
    start_worker: Any, s3_endpoint: str
) -> None:
    """With django-celery-results' django-db backend, the entry is in TaskResult.meta."""
    worker = start_worker("--pool", "solo", env={"E2E_RESULT_BACKEND": "django-db"})
    task_id = send_parse(worker, 50).id
    report = django_db_meta(worker, task_id)
    assert report["state"] == "SUCCESS"
    assert report["row_meta"]["parselog"]["status"] == "stored"
    info = LogInfo.from_entry(report["log_info"])
    assert info.status == "stored"
    assert info.key == f"parsing_logs/50/None/{task_id}-1.log.gz"
    assert_run_log(s3_endpoint, info, 50)
