"""End to end: personal data and secrets logged by a task never reach the spool file,
the stored object or the run records, in text and in JSON lines."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from celery_parselog import log_info
from celery_parselog.redaction import DEFAULT_REDACT
from tests.e2e.conftest import BUCKET, Worker, s3_client
from tests.unit.identifiers_corpus import identifier_lines
from tests.unit.redaction_corpus import REGISTERED_SECRETS, sensitive_lines

CONTACT = "jane.doe@example.org"


def sensitive_values(count: int) -> set[str]:
    values = {value for line in sensitive_lines(count) for _name, value in line.values}
    return values | set(REGISTERED_SECRETS) | {CONTACT}


def readable_spool_text(worker: Worker) -> str:
    """What the spool files of the running task hold, decompressed as far as written."""
    texts = []
    for path in (worker.state_dir / "spool").glob("*.log*"):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = zlib.decompressobj(wbits=31).decompress(data)
        texts.append(data.decode("utf-8", "replace"))
    return "\n".join(texts)


def leaked(text: str, values: set[str]) -> list[str]:
    return sorted(value for value in values if value in text)


def stored_log(result: AsyncResult[Any], endpoint: str) -> str:
    """The text of ``result``'s stored log, read back from S3."""
    info = log_info(result, wait=30)
    assert info is not None and info.stored, info
    body = s3_client(endpoint).get_object(Bucket=BUCKET, Key=info.key)["Body"].read()
    return gzip.decompress(body).decode()


@pytest.mark.parametrize("log_format", ["%(levelname)s %(name)s: %(message)s", "json"])
def test_nothing_sensitive_reaches_disk_storage_or_records(
    log_format: str, start_worker: Any, s3_endpoint: str
) -> None:
    """With the default redaction set, none of about a thousand generated sensitive values
    is in the spool file during the run, in the stored object, or in the run record."""
    worker = start_worker("--pool", "solo", env={"E2E_PARSELOG_FORMAT": log_format})
    values = sensitive_values(300)
    result = worker.send("tests.e2e.proj.tasks.sensitive_parse", 80, contact=CONTACT)

    marker = worker.state_dir / "running-80"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the task did not reach its pause"
        time.sleep(0.05)
    time.sleep(0.5)  # compressed lines reach the disk within a fifth of a second
    during = readable_spool_text(worker)
    assert "corpus line" in during
    assert leaked(during, values) == []

    assert result.get(timeout=60) == 80
    stored = stored_log(result, s3_endpoint)
    assert stored.count("corpus line") == 300
    assert "[REDACTED:" in stored
    assert leaked(stored, values) == []

    with sqlite3.connect(Path(worker.state_dir) / "db.sqlite3") as database:
        rows = database.execute(
            "SELECT args, kwargs, first_error FROM celery_parselog_tasklog WHERE task_id = ?",
            (result.id,),
        ).fetchall()
    assert len(rows) == 1
    assert "[REDACTED:email]" in rows[0][1]
    assert leaked(" ".join(str(column) for column in rows[0]), values) == []


IDENTIFIERS_REDACT = ",".join([*DEFAULT_REDACT, "identifiers"])
CASE_NUMBER = "23341932924"


@pytest.mark.parametrize("log_format", ["%(levelname)s %(name)s: %(message)s", "json"])
def test_no_identifier_reaches_storage_or_records_with_identifiers_on(
    log_format: str, start_worker: Any, s3_endpoint: str
) -> None:
    """With identifiers added to the defaults, a real worker logging the records parser's
    corpus (SSNs, dates of birth, case numbers, raw record lines, in every shape) stores a
    log and a run record holding none of them, nor the case number passed as an argument
    and raised in the task's error; JSON lines stay valid."""
    worker = start_worker(
        "--pool",
        "solo",
        env={"E2E_PARSELOG_FORMAT": log_format, "E2E_PARSELOG_REDACT": IDENTIFIERS_REDACT},
    )
    lines = identifier_lines(300)
    values = {value for line in lines for _name, value in line.values} | {CASE_NUMBER}
    result = worker.send("tests.e2e.proj.tasks.identifiers_parse", 81, case_number=CASE_NUMBER)
    with pytest.raises(ValueError, match="could not be saved"):
        result.get(timeout=60)
    stored = stored_log(result, s3_endpoint)
    assert stored.count("corpus line") == 300
    assert "[REDACTED:identifiers]" in stored
    assert leaked(stored, values) == []
    if log_format == "json":
        for text in stored.splitlines():
            json.loads(text)

    with sqlite3.connect(Path(worker.state_dir) / "db.sqlite3") as database:
        rows = database.execute(
            "SELECT args, kwargs, first_error FROM celery_parselog_tasklog WHERE task_id = ?",
            (result.id,),
        ).fetchall()
    assert len(rows) == 1
    assert leaked(" ".join(str(column) for column in rows[0]), values) == []
