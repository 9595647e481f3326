"""Helpers for tests of run records: entries as the receivers write them, and stored runs."""

from __future__ import annotations

import gzip
import hashlib
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any
from unittest import mock

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.test import override_settings

from celery_parselog import records
from celery_parselog.entry import RunEntry
from celery_parselog.models import TaskLog

BASE_TIME = datetime(2026, 11, 29, 19, 52, 10, 417000, tzinfo=timezone.utc)

# Task ids of the runs the records, admin and comparison tests make.
A_ID = "11111111-2222-4333-8444-555555555555"
B_ID = "66666666-7777-4888-9999-aaaaaaaaaaaa"
C_ID = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"


def iso(moment: datetime) -> str:
    """A time as the entries carry it."""
    return moment.isoformat(timespec="milliseconds")


def pending_entry(
    task_id: str, *, attempt: int = 1, key: str | None = None, started: datetime = BASE_TIME
) -> dict[str, Any]:
    """The entry ``_start`` records for a run."""
    key = key or f"parselog/tests.parse/{task_id}-{attempt}.log.gz"
    return {
        "status": "pending",
        "uri": f"file:///media/{key}",
        "storage": "default",
        "key": key,
        "attempt": attempt,
        "task_id": task_id,
        "started": iso(started),
    }


def final_entry(
    task_id: str,
    *,
    attempt: int = 1,
    key: str | None = None,
    started: datetime = BASE_TIME,
    seconds: float = 1.5,
    status: str = "stored",
    task_state: str | None = "SUCCESS",
    **more: Any,
) -> dict[str, Any]:
    """The entry ``_finish`` publishes once the upload is done (or failed)."""
    values = pending_entry(task_id, attempt=attempt, key=key, started=started)
    values.update(
        status=status,
        finished=iso(started + timedelta(seconds=seconds)),
        counts={"INFO": 3, "WARNING": 1},
        task_state=task_state,
        complete=True,
    )
    if status == "stored":
        values.update(bytes=120, sha256="ab" * 32)
    values.update(more)
    return values


def record_started(
    entry: Mapping[str, Any],
    *,
    task_name: str = "tests.parse",
    hostname: str,
    arguments: Mapping[str, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> None:
    """``records.record_started`` for an entry written as its wire form."""
    records.record_started(
        RunEntry.from_wire({"task_name": task_name, **entry}),
        hostname=hostname,
        arguments=arguments,
        args=args,
        kwargs=kwargs,
    )


def record_finished(entry: Mapping[str, Any], *, first_error: str | None) -> TaskLog | None:
    """``records.record_finished`` for an entry written as its wire form."""
    return records.record_finished(RunEntry.from_wire(entry), first_error=first_error)


def record_recovered(entry: Mapping[str, Any]) -> TaskLog | None:
    """``records.record_recovered`` for an entry written as its wire form."""
    return records.record_recovered(
        RunEntry.from_wire(entry), hostname=str(entry.get("hostname") or "")
    )


def failed_run(
    task_id: str, *, hostname: str = "h", started: datetime = BASE_TIME, error: str = "S3 down"
) -> TaskLog:
    """A run recorded through records.py whose upload failed with ``error``: nothing stored."""
    start = pending_entry(task_id, started=started)
    record_started(start, hostname=hostname, arguments={}, args=[], kwargs={})
    entry = final_entry(task_id, started=started, status="failed", error=error)
    row = record_finished(entry, first_error=None)
    assert row is not None
    return row


def new_id() -> str:
    """A fresh task id (the in-memory result cache is shared by the whole session)."""
    return str(uuid.uuid4())


def stored_bytes(key: str) -> bytes:
    """The object stored under ``key`` in the default storage."""
    stream: IO[bytes]
    with storages["default"].open(key, "rb") as stream:
        return stream.read()


def stored_lines(key: str) -> list[str]:
    """The lines of the log stored under ``key`` in the default storage, decompressed when
    the key ends in .gz."""
    data = stored_bytes(key)
    if key.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8").splitlines()


def store_text(key: str, text: str | bytes, *, alias: str = "default") -> tuple[int, str]:
    """Put a log under ``key`` (gzip when the key ends in .gz); its size and sha256."""
    data = text.encode() if isinstance(text, str) else text
    if key.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    storage = storages[alias]
    storage.delete(key)
    saved = storage.save(key, ContentFile(data))
    assert saved == key
    return len(data), hashlib.sha256(data).hexdigest()


def log_lines(task_id: str, messages: Sequence[str], *, start: datetime = BASE_TIME) -> str:
    """A log in the default format, one line per message, ``logger|LEVEL|text`` or plain."""
    lines = []
    for number, message in enumerate(messages):
        moment = (start + timedelta(milliseconds=number)).isoformat(timespec="milliseconds")
        stamp = moment.replace("+00:00", "Z")
        logger, level, text = message.split("|", 2) if "|" in message else ("app", "INFO", message)
        lines.append(f"{stamp} {level} {logger}: {text.replace('{id}', task_id)}")
    return "\n".join(lines) + "\n"


def stored_run(
    text: str | bytes,
    *,
    task_id: str | None = None,
    attempt: int = 1,
    subject_arguments: Mapping[str, Any] | None = None,
    started: datetime = BASE_TIME,
    compress: bool = True,
    task_state: str | None = "SUCCESS",
    counts: Mapping[str, int] | None = None,
    first_error: str | None = None,
    alias: str = "default",
) -> TaskLog:
    """A run recorded through records.py, whose log is really in the default storage."""
    task_id = task_id or str(uuid.uuid4())
    key = f"parselog/tests.parse/{task_id}-{attempt}.log" + (".gz" if compress else "")
    arguments = dict(subject_arguments or {"data_file_id": 7})
    start = pending_entry(task_id, attempt=attempt, key=key, started=started)
    start["storage"] = alias
    record_started(
        start,
        task_name="tests.parse",
        hostname="worker-1",
        arguments=arguments,
        args=list(arguments.values()),
        kwargs={},
    )
    size, sha256 = store_text(key, text, alias=alias)
    entry = final_entry(
        task_id,
        attempt=attempt,
        key=key,
        started=started,
        task_state=task_state,
        bytes=size,
        sha256=sha256,
        storage=alias,
    )
    if counts is not None:
        entry["counts"] = dict(counts)
    row = record_finished(entry, first_error=first_error)
    assert row is not None
    return row


BUCKET = "parselog-unit"
S3_ALIAS = "s3"


@contextmanager
def s3_storage(
    missing: Path, backend: str = "storages.backends.s3.S3Storage", **options: Any
) -> Iterator[None]:
    """An ``s3`` storage alias on moto's in-process S3, with dummy credentials only.

    The AWS config and credential files point at ``missing`` paths, so a developer's own
    credentials are never read. ``backend`` may be a subclass of ``S3Storage``;
    ``options`` are added to the storage's ``OPTIONS``.
    """
    import boto3
    from moto import mock_aws

    variables = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(missing / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(missing / "aws-credentials"),
    }
    saved = {name: os.environ.get(name) for name in [*variables, "AWS_PROFILE"]}
    os.environ.update(variables)
    os.environ.pop("AWS_PROFILE", None)
    stores = {
        **settings.STORAGES,
        S3_ALIAS: {
            "BACKEND": backend,
            "OPTIONS": {"bucket_name": BUCKET, "region_name": "us-east-1", **options},
        },
    }
    try:
        with mock_aws(), override_settings(STORAGES=stores):
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class CountingFile:
    """A file from ``storage.open()`` that counts the bytes read through it."""

    def __init__(self, handle: Any, counter: list[int]) -> None:
        self._handle = handle
        self._counter = counter

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._handle.read(size)
        self._counter[0] += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._handle.seek(offset, whence))

    def close(self) -> None:
        self._handle.close()


@contextmanager
def counting_reads(alias: str = "default") -> Iterator[list[int]]:
    """Count every byte read from files that ``storages[alias].open()`` returns."""
    storage = storages[alias]
    original = storage.open
    counter = [0]

    def counting_open(name: str, mode: str = "rb") -> CountingFile:
        return CountingFile(original(name, mode), counter)

    with mock.patch.object(storage, "open", counting_open):
        yield counter
