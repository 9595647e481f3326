"""End to end: a task that runs again, as the next delivery of its message or as its next
attempt, never destroys or hides the log of the run before. Real signals kill real worker
processes (``acks_late`` brings the message back); a slow link between the workers and
moto's S3 server makes an earlier attempt's upload finish after the later ones."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from celery.result import AsyncResult

from celery_parselog import LogInfo, log_info
from tests.e2e.conftest import (
    BUCKET,
    RecordFault,
    Worker,
    object_lines,
    running_pid,
    s3_client,
    spool_contents,
    wait_for,
    wrong_run,
)
from tests.notes import INCOMPLETE_TRAILER
from tests.servers import SlowLink, slow_link

TASKS = "tests.e2e.proj.tasks"
# The sweep after a lost child must start within a second or two (the sweeper probes the
# spool folder's locks every second); the bound allows for a loaded machine, and stays
# far below the recovery interval these tests give the workers, so a sweep on the
# interval cannot pass for the prompt one.
PROMPT_SWEEP_SECONDS = 10.0
RECOVERY_INTERVAL = "30"
# A slow uplink: a large log takes seconds to upload, a small one a moment.
LINK_BYTES_PER_SECOND = 256 * 1024
BULK_LINES = 3000  # about 2.3 MB of gzip that random text cannot shrink: ~9 s on the link


@pytest.fixture
def slow_s3(s3_endpoint: str) -> Iterator[SlowLink]:
    """The session's S3 server behind a slow link."""
    with slow_link(s3_endpoint, LINK_BYTES_PER_SECOND) as link:
        yield link


def key_of(file_id: int, task_id: str, attempt: int, delivery: int = 1) -> str:
    """The key the project's template gives a run, a later delivery's number included."""
    name = f"{task_id}-{attempt}" + (f".delivery-{delivery}" if delivery > 1 else "")
    return f"parsing_logs/{file_id}/None/{name}.log.gz"


def stored_logs(endpoint: str, file_id: int, task_id: str) -> dict[str, list[str]]:
    """Every log stored for the task's runs on ``file_id``, by key."""
    prefix = f"parsing_logs/{file_id}/None/{task_id}-"
    listed = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"]: object_lines(endpoint, item["Key"]) for item in listed.get("Contents", [])}


def has_object(endpoint: str, key: str) -> bool:
    listed = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=key)
    return any(item["Key"] == key for item in listed.get("Contents", []))


def record_outcome(
    record_fault: RecordFault,
    fault: str,
    *,
    state_kept: bool,
    logs: Mapping[str, list[str]],
    runs: Mapping[str, str],
    entry: LogInfo,
    latest: tuple[Any, ...],
) -> None:
    """Record the fault with how many of the runs' logs are stored, and how many are in the
    wrong run or attempt, as storage and the entry hold them.

    ``runs`` maps each run's own key to the first line only that run writes. A log is
    stored when some object holds its lines; it is in the wrong place when that object is
    under another run's key. The entry counts once more when it names another run than
    the latest, ``latest`` being (task id, attempt, delivery).
    """
    first_lines = {key: lines[0] for key, lines in logs.items() if lines}
    stored = sum(line in first_lines.values() for line in runs.values())
    elsewhere = sum(
        first_lines.get(key) != line and line in first_lines.values() for key, line in runs.items()
    )
    record_fault(
        fault,
        state_kept=state_kept,
        logs_expected=len(runs),
        logs_stored=stored,
        logs_misattributed=elsewhere + wrong_run(entry, *latest),
    )


def task_rows(worker: Worker, task_id: str) -> list[dict[str, Any]]:
    """The task's TaskLog rows, read straight from the worker's SQLite database, in order."""
    with sqlite3.connect(worker.state_dir / "db.sqlite3", timeout=10) as connection:
        connection.row_factory = sqlite3.Row
        found = connection.execute(
            "SELECT attempt, delivery, state, task_state, key, upload_status, complete,"
            " redelivery_of FROM celery_parselog_tasklog WHERE task_id = ?"
            " ORDER BY attempt, delivery",
            (task_id,),
        ).fetchall()
    return [dict(row) for row in found]


def settled_rows(worker: Worker, task_id: str, count: int) -> list[dict[str, Any]]:
    """The task's rows once there are ``count`` of them and none is still being uploaded
    (rows are written from a thread of their own, a moment after the upload)."""

    def settled() -> list[dict[str, Any]] | None:
        rows = task_rows(worker, task_id)
        done = len(rows) == count and all(row["upload_status"] == "stored" for row in rows)
        return rows if done else None

    found: list[dict[str, Any]] = wait_for(settled, 30, f"{count} stored rows of {task_id}")
    return found


def columns(rows: list[dict[str, Any]], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(row[name] for name in names) for row in rows]


def succeeded(worker: Worker, task_id: str) -> dict[str, Any] | None:
    """The task's result metadata once it says SUCCESS, read past the result cache."""
    meta: dict[str, Any] = worker.client.backend.get_task_meta(task_id, cache=False)
    return meta if meta.get("status") == "SUCCESS" else None


def after_the_late_upload(
    worker: Worker, result: AsyncResult[Any], endpoint: str, late_key: str, latest: int
) -> tuple[LogInfo, set[int]]:
    """Wait for an earlier attempt's upload that ends after the ``latest`` attempt's entry
    was published, then for the spool to empty; return the entry then, and every attempt
    ``log_info()`` named meanwhile.

    Fails unless the late upload really was late: the latest attempt's entry is published
    while nothing is stored under ``late_key`` yet, which is what these tests are about.
    """
    published = log_info(result, wait=60)
    assert published is not None and published.stored, published
    assert published.attempt == latest, published
    assert not has_object(endpoint, late_key), f"{late_key} was stored before attempt {latest}"
    seen: set[int] = set()

    def late_one_stored() -> bool:
        entry = log_info(result)
        if entry is not None:
            seen.add(entry.attempt)
        return has_object(endpoint, late_key)

    wait_for(late_one_stored, 120, f"the late upload of {late_key}")
    assert wait_for(lambda: spool_contents(worker) == [], 60, "the spool to empty")
    info = log_info(result, wait=30)
    assert info is not None, "no parselog entry"
    return info, seen


def delivery_lines(delivery: int, file_id: int) -> list[str]:
    return [
        f"INFO e2eproj.records: delivery {delivery} record {n} of file {file_id}" for n in range(3)
    ]


def attempt_line(attempt: int, file_id: int) -> str:
    return f"INFO e2eproj.records: attempt {attempt} of file {file_id}"


def test_child_killed_with_acks_late_keeps_both_deliveries_logs(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """``acks_late`` with ``reject_on_worker_lost``: the prefork child is SIGKILLed mid-run,
    the message is requeued and runs again in the next child, and succeeds. The killed
    run's log is stored within the prompt sweep's bound (Celery sends no ``task_failure``
    for a requeue) under the plain key, the second delivery's under a key of its own; the
    entry and a row of its own name the second delivery and link it to the first."""
    worker = start_worker(
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        env={"E2E_RECOVERY_INTERVAL": RECOVERY_INTERVAL},
    )
    result = worker.send(f"{TASKS}.redelivered_parse", 80)
    pid = running_pid(worker, 80)
    time.sleep(0.5)  # compressed lines reach the disk within a fifth of a second
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    first, second = key_of(80, result.id, 1), key_of(80, result.id, 1, 2)
    wait_for(lambda: has_object(s3_endpoint, first), 60, "the killed run's log")
    stored_after = time.monotonic() - killed

    assert result.get(timeout=60) == 2
    assert wait_for(lambda: spool_contents(worker) == [], 60, "the spool to empty")
    info = log_info(result, wait=30)
    assert info is not None and info.stored, info
    logs = stored_logs(s3_endpoint, 80, result.id)
    runs = {first: delivery_lines(1, 80)[0], second: delivery_lines(2, 80)[0]}
    # Both deliveries' logs, each under its own key with its own lines.
    assert sorted(logs) == sorted(runs), sorted(logs)
    assert logs[first] == [*delivery_lines(1, 80), INCOMPLETE_TRAILER]
    assert logs[second][:3] == delivery_lines(2, 80)
    assert INCOMPLETE_TRAILER not in logs[second]
    # The entry names the run that succeeded, and links it to the one that was lost.
    assert (info.key, info.attempt, info.delivery) == (second, 1, 2)
    assert info.complete is True and info.task_state == "SUCCESS"
    assert info.redelivery_of == first
    rows = settled_rows(worker, result.id, 2)
    assert columns(rows, "delivery", "state", "key", "complete") == [
        (1, "lost", first, 0),
        (2, "succeeded", second, 1),
    ]
    assert rows[1]["redelivery_of"] == first
    print(f"killed run's log stored {stored_after:.2f} s after the kill")
    assert stored_after < PROMPT_SWEEP_SECONDS, stored_after
    record_outcome(
        record_fault,
        "Prefork child killed with `acks_late` and `reject_on_worker_lost`;"
        " the message runs again and succeeds",
        state_kept=result.state == "SUCCESS",
        logs=logs,
        runs=runs,
        entry=info,
        latest=(result.id, 1, 2),
    )


def test_whole_worker_killed_with_acks_late_keeps_both_deliveries_logs(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """``acks_late``: a solo worker is SIGKILLed mid-run. The next worker on the same spool
    folder stores the killed run's log at its first sweep; after the broker's visibility
    timeout the message comes back to it and runs again. The new run's upload keeps its
    own key, so the killed run's lines are still there."""
    first_worker = start_worker("--pool", "solo")
    result = first_worker.send(f"{TASKS}.redelivered_parse", 81)
    running_pid(first_worker, 81)
    time.sleep(0.5)  # compressed lines reach the disk within a fifth of a second
    first_worker.process.send_signal(signal.SIGKILL)
    first_worker.process.wait(10)
    first, second = key_of(81, result.id, 1), key_of(81, result.id, 1, 2)
    # The successor restores unacknowledged messages older than its visibility timeout.
    successor = start_worker(
        "--pool",
        "solo",
        state_dir=first_worker.state_dir,
        queue=first_worker.queue,
        env={"E2E_VISIBILITY_TIMEOUT": "5"},
    )
    assert result.get(timeout=120) == 2
    assert wait_for(lambda: spool_contents(successor) == [], 60, "the spool to empty")
    info = log_info(result, wait=30)
    assert info is not None and info.stored, info
    logs = stored_logs(s3_endpoint, 81, result.id)
    runs = {first: delivery_lines(1, 81)[0], second: delivery_lines(2, 81)[0]}
    assert sorted(logs) == sorted(runs), sorted(logs)
    assert logs[first] == [*delivery_lines(1, 81), INCOMPLETE_TRAILER]
    assert logs[second][:3] == delivery_lines(2, 81)
    assert (info.key, info.attempt, info.delivery) == (second, 1, 2)
    assert info.complete is True and info.task_state == "SUCCESS"
    assert info.redelivery_of == first
    rows = settled_rows(successor, result.id, 2)
    assert columns(rows, "delivery", "state", "key") == [
        (1, "lost", first),
        (2, "succeeded", second),
    ]
    assert rows[1]["redelivery_of"] == first
    record_outcome(
        record_fault,
        "Whole worker killed with `acks_late`; the message comes back to the next worker",
        state_kept=result.state == "SUCCESS",
        logs=logs,
        runs=runs,
        entry=info,
        latest=(result.id, 1, 2),
    )


def test_lost_attempt_recovered_after_its_retry_does_not_replace_the_retrys_entry(
    start_worker: Any, s3_endpoint: str, slow_s3: SlowLink, record_fault: RecordFault
) -> None:
    """``retry_on_worker_lost``: the prefork child is SIGKILLed during attempt 1, whose log
    is large; Celery sends attempt 2, which succeeds. On a slow link, recovery's upload of
    attempt 1 ends after attempt 2's entry is published; the entry stays on attempt 2,
    complete, with attempt 1 in ``earlier_keys``."""
    worker = start_worker(
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        env={"E2E_S3_ENDPOINT": slow_s3.endpoint, "E2E_RECOVERY_INTERVAL": RECOVERY_INTERVAL},
    )
    result = worker.send(f"{TASKS}.lost_attempt_parse", 82, bulk=BULK_LINES)
    pid = running_pid(worker, 82)
    time.sleep(0.5)  # compressed lines reach the disk within a fifth of a second
    os.kill(pid, signal.SIGKILL)
    first, second = key_of(82, result.id, 1), key_of(82, result.id, 2)

    # Read without the result cache: on Celery before 5.7 the lost attempt is recorded
    # as a FAILURE first (see the project's _retry_on_worker_lost), and then the retry
    # succeeds.
    meta = wait_for(lambda: succeeded(worker, result.id), 120, "attempt 2 to succeed")
    assert meta["result"] == 2
    info, seen = after_the_late_upload(worker, result, s3_endpoint, first, latest=2)
    logs = stored_logs(s3_endpoint, 82, result.id)
    runs = {first: attempt_line(1, 82), second: attempt_line(2, 82)}
    assert (info.key, info.attempt) == (second, 2)
    assert seen == {2}, f"log_info() named attempts {sorted(seen)} while attempt 1 uploaded"
    assert info.delivery == 1
    assert info.complete is True and info.task_state == "SUCCESS"
    assert info.earlier_keys == (first,)
    assert sorted(logs) == sorted(runs), sorted(logs)
    assert logs[first][0] == attempt_line(1, 82)
    assert logs[first][-1] == INCOMPLETE_TRAILER
    assert len(logs[first]) == 1 + BULK_LINES + 1
    assert logs[second][0] == attempt_line(2, 82)
    rows = settled_rows(worker, result.id, 2)
    assert columns(rows, "attempt", "state", "key") == [
        (1, "lost", first),
        (2, "succeeded", second),
    ]
    record_outcome(
        record_fault,
        "Child killed with `retry_on_worker_lost`; attempt 1's log recovered after attempt 2 ended",
        state_kept=result.state == "SUCCESS",
        logs=logs,
        runs=runs,
        entry=info,
        latest=(result.id, 2, 1),
    )


def test_entry_converges_on_the_latest_attempt_whatever_order_uploads_finish_in(
    start_worker: Any, s3_endpoint: str, slow_s3: SlowLink, record_fault: RecordFault
) -> None:
    """A threads pool of 4 on a slow link: attempt 1 logs a large log and retries; attempts 2
    and 3 run and upload while attempt 1's upload goes on, and it ends last. The entry
    names attempt 3 throughout and after, with attempts 1 and 2 in ``earlier_keys``."""
    worker = start_worker(
        "--pool", "threads", "--concurrency", "4", env={"E2E_S3_ENDPOINT": slow_s3.endpoint}
    )
    result = worker.send(f"{TASKS}.overtaken_parse", 83, bulk=BULK_LINES)
    keys = [key_of(83, result.id, attempt) for attempt in (1, 2, 3)]

    assert result.get(timeout=120) == 3
    info, seen = after_the_late_upload(worker, result, s3_endpoint, keys[0], latest=3)
    logs = stored_logs(s3_endpoint, 83, result.id)
    runs = {key: attempt_line(attempt, 83) for attempt, key in enumerate(keys, start=1)}
    assert (info.key, info.attempt) == (keys[2], 3)
    assert seen == {3}, f"log_info() named attempts {sorted(seen)} while attempt 1 uploaded"
    assert info.complete is True and info.task_state == "SUCCESS"
    assert info.earlier_keys == (keys[0], keys[1])
    assert sorted(logs) == sorted(keys), sorted(logs)
    assert [logs[key][0] for key in keys] == [attempt_line(n, 83) for n in (1, 2, 3)]
    rows = settled_rows(worker, result.id, 3)
    assert columns(rows, "attempt", "state", "key") == [
        (1, "retried", keys[0]),
        (2, "retried", keys[1]),
        (3, "succeeded", keys[2]),
    ]
    record_outcome(
        record_fault,
        "Retries under a threads pool of 4 on a slow link; attempt 1's upload ends last",
        state_kept=result.state == "SUCCESS",
        logs=logs,
        runs=runs,
        entry=info,
        latest=(result.id, 3, 1),
    )
