"""End to end: logs of runs that go wrong still reach storage, marked as incomplete when
the run never reached its end. Real signals kill real worker processes; the S3 server
is stopped and started again to make an outage."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from celery_parselog import LogInfo, log_info
from tests.e2e.conftest import (
    BUCKET,
    RecordFault,
    StoppableS3,
    parse_while_s3_is_down,
    run_in_project,
    running_pid,
    s3_client,
    spool_contents,
    stored_text,
    wait_for,
    wrong_run,
)
from tests.notes import INCOMPLETE_TRAILER

SLOW = "tests.e2e.proj.tasks.slow_parse"
PARSE = "tests.e2e.proj.tasks.parse"


def stored_info(result: AsyncResult[Any], timeout: float = 60) -> LogInfo:
    info = log_info(result, wait=timeout)
    assert info is not None, "no parselog entry"
    assert info.status == "stored", info
    return info


def stored_or_none(result: AsyncResult[Any]) -> LogInfo | None:
    info = log_info(result)
    return info if info is not None and info.stored else None


def slow_lines(file_id: int, lines: int = 3) -> list[str]:
    return [f"INFO e2eproj.records: slow record {n} of file {file_id}" for n in range(lines)]


@pytest.mark.parametrize(
    ("compress", "settle"),
    [
        # Plain logs: every line is on disk as it is written, so kill at once.
        ("0", 0.0),
        # Compressed logs: lines reach the disk within a fifth of a second.
        ("1", 0.5),
    ],
)
def test_child_killed_mid_task_has_its_log_stored_by_the_main_process(
    compress: str, settle: float, start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """SIGKILL of a prefork child: the main process stores the log, ending in the trailer."""
    worker = start_worker("--pool", "prefork", "--concurrency", "1", env={"E2E_COMPRESS": compress})
    result = worker.send(SLOW, 60)
    pid = running_pid(worker, 60)
    time.sleep(settle)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(Exception, match="Worker exited prematurely"):
        result.get(timeout=60)
    info = stored_info(result)
    suffix = ".log.gz" if compress == "1" else ".log"
    assert info.key == f"parsing_logs/60/None/{result.id}-1{suffix}"
    assert stored_text(s3_endpoint, info) == [*slow_lines(60), INCOMPLETE_TRAILER]
    entry = worker.client.backend.get_task_meta(result.id, cache=False)["parselog"]
    assert entry["complete"] is False
    assert entry["incomplete_reason"] == "worker lost"
    assert result.state == "FAILURE"
    assert wait_for(lambda: spool_contents(worker) == [], 10, "the spool to empty")
    kind = "compressed" if compress == "1" else "plain"
    record_fault(
        f"Prefork child killed with SIGKILL mid-task ({kind} log)",
        state_kept=result.state == "FAILURE",
        logs_expected=1,
        logs_stored=int(info.stored),
        logs_misattributed=wrong_run(info, result.id, 1),
    )


def test_hard_time_limit_keeps_the_log_up_to_the_last_line(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """A hard time limit kills the child; its log reaches storage with the trailer."""
    worker = start_worker("--pool", "prefork", "--concurrency", "1")
    result = worker.client.send_task(
        SLOW, args=(61,), queue=worker.queue, time_limit=3, soft_time_limit=None
    )
    with pytest.raises(Exception, match="TimeLimitExceeded"):
        result.get(timeout=60)
    info = stored_info(result)
    lines = stored_text(s3_endpoint, info)
    # The child is either killed at once (recovered: "worker lost") or interrupted
    # first and then killed (its own postrun: "run interrupted"); both say so.
    assert lines[:-1] == slow_lines(61)
    assert lines[-1] in (INCOMPLETE_TRAILER, "-- log incomplete: run interrupted --")
    entry = worker.client.backend.get_task_meta(result.id, cache=False)["parselog"]
    assert entry["complete"] is False
    record_fault(
        "Hard time limit (`time_limit`) kills the child",
        state_kept=result.state == "FAILURE",
        logs_expected=1,
        logs_stored=int(info.stored),
        logs_misattributed=wrong_run(info, result.id, 1),
    )


def test_soft_time_limit_traceback_is_in_the_uploaded_log(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """SoftTimeLimitExceeded is raised in the task: its traceback is logged and uploaded."""
    worker = start_worker("--pool", "prefork", "--concurrency", "1")
    result = worker.client.send_task(SLOW, args=(62,), queue=worker.queue, soft_time_limit=2)
    with pytest.raises(Exception, match="SoftTimeLimitExceeded"):
        result.get(timeout=60)
    info = stored_info(result)
    lines = stored_text(s3_endpoint, info)
    assert lines[:3] == slow_lines(62)
    assert "Traceback (most recent call last):" in lines
    assert any("SoftTimeLimitExceeded" in line for line in lines[-2:])
    assert INCOMPLETE_TRAILER not in lines
    entry = worker.client.backend.get_task_meta(result.id, cache=False)["parselog"]
    assert entry["complete"] is True
    record_fault(
        "Soft time limit (`SoftTimeLimitExceeded`)",
        state_kept=result.state == "FAILURE",
        logs_expected=1,
        logs_stored=int(info.stored),
        logs_misattributed=wrong_run(info, result.id, 1),
    )


def test_revoked_with_terminate_behaves_like_a_killed_child(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """revoke(terminate=True) kills the child; the log is stored as incomplete."""
    worker = start_worker("--pool", "prefork", "--concurrency", "1")
    result = worker.send(SLOW, 63)
    running_pid(worker, 63)
    time.sleep(0.5)  # compressed lines reach the disk within a fifth of a second
    worker.client.control.revoke(result.id, terminate=True, signal="SIGKILL")
    info = stored_info(result)
    assert stored_text(s3_endpoint, info) == [*slow_lines(63), INCOMPLETE_TRAILER]
    record_fault(
        "Task revoked with `terminate=True`",
        state_kept=wait_for(lambda: result.state == "REVOKED", 30, "the task to be REVOKED"),
        logs_expected=1,
        logs_stored=int(info.stored),
        logs_misattributed=wrong_run(info, result.id, 1),
    )


def test_whole_worker_killed_is_recovered_when_the_next_one_starts(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """A solo worker killed mid-task: its successor on the same spool folder stores the log."""
    first = start_worker("--pool", "solo")
    result = first.send(SLOW, 64)
    running_pid(first, 64)
    time.sleep(0.5)  # compressed lines reach the disk within a fifth of a second
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    assert any(name.endswith(".log.gz") for name in spool_contents(first))
    start_worker("--pool", "solo", state_dir=first.state_dir)
    info = stored_info(result)
    assert stored_text(s3_endpoint, info) == [*slow_lines(64), INCOMPLETE_TRAILER]
    record_fault(
        "Whole worker killed with SIGKILL; stored by the next worker's first sweep",
        # Nothing stored a result for the lost run; capture does not invent one.
        state_kept=result.state == "PENDING",
        logs_expected=1,
        logs_stored=int(info.stored),
        logs_misattributed=wrong_run(info, result.id, 1),
    )


def test_storage_outage_keeps_the_log_and_the_task_result(
    start_worker: Any, stoppable_s3: StoppableS3, record_fault: RecordFault
) -> None:
    """S3 down during upload: state and result stay, the entry says failed, the log waits in
    the spool, and the periodic sweep stores it once S3 is back."""
    worker = start_worker(
        "--pool",
        "solo",
        env={
            "E2E_S3_ENDPOINT": stoppable_s3.endpoint,
            "E2E_UPLOAD_ATTEMPTS": "2",
            "E2E_UPLOAD_BACKOFF": "0.1",
            "E2E_RECOVERY_INTERVAL": "2",
        },
    )
    stoppable_s3.stop()
    result = worker.send(PARSE, 65)
    assert result.get(timeout=60)["file"] == 65
    assert result.state == "SUCCESS"
    failed = log_info(result, wait=30)
    assert failed is not None
    assert failed.status == "failed"
    assert failed.error is not None and "after 2 attempts" in failed.error
    names = spool_contents(worker)
    assert len(names) == 2 and names[1] == names[0] + ".json"

    stoppable_s3.start()
    # "failed" is final for log_info(); the sweep turns it into "stored" later.
    info = wait_for(lambda: stored_or_none(result), 60, "the sweep to store the log")
    assert info.key == f"parsing_logs/65/None/{result.id}-1.log.gz"
    lines = stored_text(stoppable_s3.endpoint, info)
    assert lines[0] == "INFO e2eproj.task: parse start 65"
    assert INCOMPLETE_TRAILER not in lines
    assert wait_for(lambda: spool_contents(worker) == [], 10, "the spool to empty")
    assert result.get(timeout=5)["file"] == 65
    record_fault(
        "S3 down at upload time; stored by the periodic sweep once it is back",
        state_kept=result.state == "SUCCESS",
        logs_expected=1,
        logs_stored=int(info.stored),
        logs_misattributed=wrong_run(info, result.id, 1),
    )


def test_recover_command_reports_an_unreachable_storage_then_stores(
    start_worker: Any, stoppable_s3: StoppableS3, record_fault: RecordFault
) -> None:
    """parselog_recover exits non-zero with a clear message while S3 is down, then stores."""
    worker, result = parse_while_s3_is_down(start_worker, stoppable_s3, 66)
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(30)

    def recover() -> subprocess.CompletedProcess[str]:
        return run_in_project(worker, "-m", "django", "parselog_recover")

    down = recover()
    assert down.returncode != 0
    assert "could not be stored" in down.stderr
    assert "storage is reachable" in down.stderr
    assert len(spool_contents(worker)) == 2

    stoppable_s3.start()
    up = recover()
    assert up.returncode == 0, up.stderr
    assert "Stored 1," in up.stdout
    assert spool_contents(worker) == []
    info = stored_info(result, timeout=5)
    assert stored_text(stoppable_s3.endpoint, info)[0] == "INFO e2eproj.task: parse start 66"
    record_fault(
        "S3 down, worker stopped; stored by `manage.py parselog_recover`",
        state_kept=result.state == "SUCCESS",
        logs_expected=1,
        logs_stored=int(info.stored),
        logs_misattributed=wrong_run(info, result.id, 1),
    )


def test_spool_folder_is_private(start_worker: Any) -> None:
    """Spool files are readable by the worker's user only, while they exist."""
    worker = start_worker("--pool", "solo")
    result = worker.send(SLOW, 67, seconds=3.0)
    running_pid(worker, 67)
    spool = worker.state_dir / "spool"
    logs = [p for p in spool.iterdir() if p.name.endswith(".log.gz")]
    assert logs and all((p.stat().st_mode & 0o077) == 0 for p in logs)
    result.get(timeout=60)
    assert Path(spool).exists()


@pytest.mark.parametrize("task_name", ["retried_parse", "autoretried_parse"])
def test_each_retry_attempt_has_a_log_of_its_own(
    task_name: str, start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """Every attempt is stored under its own key; the final entry lists the earlier ones."""
    worker = start_worker("--pool", "solo")
    result = worker.send(f"tests.e2e.proj.tasks.{task_name}", 70)
    final_attempt = result.get(timeout=60)
    info = stored_info(result)
    assert info.attempt == final_attempt
    assert info.key == f"parsing_logs/70/None/{result.id}-{final_attempt}.log.gz"
    entry = worker.client.backend.get_task_meta(result.id, cache=False)["parselog"]
    earlier = [f"parsing_logs/70/None/{result.id}-{n}.log.gz" for n in range(1, final_attempt)]
    assert entry["earlier_keys"] == earlier
    first_lines = [
        gzip.decompress(s3_client(s3_endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read())
        .decode()
        .splitlines()[0]
        for key in [*earlier, info.key]
    ]
    in_wrong_attempt = sum(
        line != f"INFO e2eproj.records: attempt {number} of file 70"
        for number, line in enumerate(first_lines, start=1)
    )
    assert in_wrong_attempt == 0, first_lines
    assert wait_for(lambda: spool_contents(worker) == [], 10, "the spool to empty")
    how = "`self.retry()`" if task_name == "retried_parse" else "`autoretry_for`"
    record_fault(
        f"Task retried with {how}: one log per attempt",
        state_kept=result.state == "SUCCESS",
        logs_expected=final_attempt,
        logs_stored=len(earlier) + 1,
        logs_misattributed=in_wrong_attempt + wrong_run(info, result.id, final_attempt),
    )


@pytest.mark.parametrize(
    ("task_name", "line"), [("rejected_parse", "rejecting"), ("ignored_parse", "ignoring")]
)
def test_reject_and_ignore_store_their_log_and_leave_nothing(
    task_name: str, line: str, start_worker: Any, s3_endpoint: str
) -> None:
    """Reject and Ignore end a run early: its log is stored and the spool is left empty."""
    worker = start_worker("--pool", "solo")
    result = worker.send(f"tests.e2e.proj.tasks.{task_name}", 71)
    info = wait_for(lambda: stored_or_none(result), 60, "the log to be stored")
    assert stored_text(s3_endpoint, info)[0] == f"INFO e2eproj.records: {line} file 71"
    assert wait_for(lambda: spool_contents(worker) == [], 10, "the spool to empty")


def test_awkward_input_is_logged_and_the_key_stays_inside_its_prefix(
    start_worker: Any, s3_endpoint: str
) -> None:
    """Non-UTF-8 text, a 10 MB line, an unprintable argument, a path-like argument and a
    logging reconfiguration: the task succeeds and the stored log holds all of it."""
    worker = start_worker("--pool", "solo")
    result = worker.send("tests.e2e.proj.tasks.messy_parse", "../../etc/passwd")
    assert result.get(timeout=60) == "../../etc/passwd"
    info = stored_info(result)
    assert info.key.startswith("parsing_logs/")
    assert ".." not in info.key.split("/")
    assert "/etc/" not in info.key
    lines = stored_text(s3_endpoint, info)
    assert lines[0] == "INFO e2eproj.records: name from a legacy file: caf\\udce9"
    assert lines[1] == "INFO e2eproj.records: huge line: " + "x" * 10_000_000
    # The project's console handler reports the broken record on stderr, which the
    # log captures too; the log itself notes the record it could not format.
    assert "WARNING stderr: --- Logging error ---" in lines
    assert (
        "-- celery-parselog could not format a record of logger 'e2eproj.records' "
        "at level INFO: RuntimeError --"
    ) in lines
    assert lines[-2] == "INFO e2eproj.records: still captured after the task reconfigured logging"
    assert lines[-1].startswith("INFO celery.app.trace: Task tests.e2e.proj.tasks.messy_parse[")


def test_checkpoints_show_the_log_so_far_and_the_final_upload_replaces_them(
    start_worker: Any, s3_endpoint: str
) -> None:
    """With checkpoints every second, a running task's log is readable in S3 under its final
    key; when it ends, that one object holds the whole log."""
    worker = start_worker(
        "--pool", "prefork", "--concurrency", "1", env={"E2E_CHECKPOINT_SECONDS": "1"}
    )
    result = worker.send(SLOW, 68, seconds=4.0)
    running_pid(worker, 68)
    key = f"parsing_logs/68/None/{result.id}-1.log.gz"
    client = s3_client(s3_endpoint)

    def partial() -> list[str] | None:
        try:
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        return gzip.decompress(body).decode().splitlines()

    during = wait_for(partial, 10, "a checkpoint to be stored")
    assert during[:3] == slow_lines(68)
    assert not result.ready()
    pending = log_info(result)
    assert pending is not None and pending.status == "pending"

    assert result.get(timeout=60) == 68
    info = stored_info(result)
    assert info.key == key
    final = stored_text(s3_endpoint, info)
    assert final[:4] == [*slow_lines(68), "INFO e2eproj.records: slow parse of file 68 finished"]
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="parsing_logs/68/")
    assert [item["Key"] for item in listed["Contents"]] == [key]
