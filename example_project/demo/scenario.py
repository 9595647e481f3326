"""The demo's parses: one per sample file and a re-parse, waited for and recorded.

The worker's health is checked while waiting, so a worker that died shows up at
once with its last lines, not as a time-out a minute later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from datafiles.models import DataFile, ParseRun
from datafiles.runs import next_reparse_id, record_outcome, start_parse
from datafiles.tasks import parse
from demo.errors import DemoError
from demo.worker import WorkerProcess

__all__ = ["LOG_WAIT", "parse_all"]

# How long to keep reading a finished task's result while its log is being stored.
LOG_WAIT = 15.0
_POLL = 0.2


def parse_all(
    data_files: Sequence[DataFile], *, worker: WorkerProcess, timeout: float
) -> list[ParseRun]:
    """Parse every file, then the first one again, and return the finished, recorded runs."""
    runs = [start_parse(data_file, queue=worker.queue) for data_file in data_files]
    again = data_files[0]
    runs.append(start_parse(again, reparse_id=next_reparse_id(again), queue=worker.queue))
    wait_for(runs, worker=worker, timeout=timeout)
    return [record_outcome(run, wait=LOG_WAIT) for run in runs]


def wait_for(runs: Sequence[ParseRun], *, worker: WorkerProcess, timeout: float) -> None:
    """Wait until every run's task has finished, or fail with those still going."""
    deadline = time.monotonic() + timeout
    waiting = list(runs)
    while waiting:
        waiting = [run for run in waiting if not parse.AsyncResult(run.task_id).ready()]
        if not waiting:
            return
        worker.check_running()
        if time.monotonic() > deadline:
            names = ", ".join(f"{run.task_id} ({run.data_file.filename})" for run in waiting)
            raise DemoError(
                f"{len(waiting)} parses did not finish within {timeout:g} s: {names}. "
                f"The worker's last lines ({worker.output}):\n{worker.tail()}"
            )
        time.sleep(_POLL)
