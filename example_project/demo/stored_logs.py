"""Reading a run's log back from storage, and checking that every run's log is there."""

from __future__ import annotations

import gzip
from collections.abc import Sequence

from django.core.files.storage import storages

from datafiles.models import ParseRun
from demo.errors import DemoError

__all__ = ["check_stored", "read_log"]


def read_log(run: ParseRun) -> str:
    """The text of the run's log, through the same Django storage the worker wrote it to."""
    with storages[run.log_storage].open(run.log_key, "rb") as stream:
        data: bytes = stream.read()
    if run.log_key.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def check_stored(runs: Sequence[ParseRun]) -> None:
    """Each run has a stored log of the recorded size, under a key no other run has."""
    problems = []
    for run in runs:
        if run.log_status != "stored":
            problems.append(f"{run.task_id}: log status is {run.log_status or 'missing'!r}")
            continue
        storage = storages[run.log_storage]
        if not storage.exists(run.log_key):
            problems.append(f"{run.task_id}: {run.log_uri} is not in storage")
        elif storage.size(run.log_key) != run.log_bytes:
            problems.append(f"{run.task_id}: {run.log_uri} is not {run.log_bytes} bytes long")
    if len({run.log_key for run in runs}) != len(runs):
        problems.append("two runs share a log key")
    if problems:
        raise DemoError("some parse logs are not where they should be:\n  " + "\n  ".join(problems))
