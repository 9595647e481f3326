"""Tasks that log the way real parsers do: module loggers, a non-propagating logger,
Celery's task logger, a root-level helper and ``print()``. None of them knows about
celery-parselog."""

from __future__ import annotations

import base64
import logging
import logging.config
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.exceptions import Ignore, Reject
from celery.signals import task_failure
from celery.utils.log import get_task_logger

records = logging.getLogger("e2eproj.records")
parsers = logging.getLogger("e2eproj.parsers")
task_logger = get_task_logger("e2eproj.task")


def log(message: str) -> None:
    """A root-level helper, as older code bases have."""
    logging.info(message)


@shared_task
def parse(
    data_file_id: int,
    reparse_id: int | None = None,
    lines: int = 2,
    fail: bool = False,
    pause: float = 0.0,
) -> dict[str, Any]:
    started = time.time()
    task_logger.info("parse start %s", data_file_id)
    for number in range(lines):
        records.info("record %d of file %s", number, data_file_id)
        parsers.warning("bad record %d in file %s", number, data_file_id)
        log(f"progress {number} file {data_file_id}")
        print("printed", number, "file", data_file_id)
        logging.getLogger("e2eproj.records").debug("debug %d is below the level", number)
        if pause:
            time.sleep(pause)
    if fail:
        raise ValueError(f"corrupt file {data_file_id}")
    return {"file": data_file_id, "pid": os.getpid(), "started": started, "ended": time.time()}


@shared_task
def unselected(value: int) -> int:
    records.info("unselected task %s", value)
    return value


def _count_run(name: str) -> int:
    """How many times a task body has started under ``name``, this time included: a file in
    the state folder keeps the count across processes and workers."""
    counter = Path(os.environ["E2E_STATE_DIR"]) / name
    number = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(number))
    return number


def _say_running(data_file_id: int) -> None:
    """Tell the test which process runs the task, so it can kill it (see ``running_pid``)."""
    (Path(os.environ["E2E_STATE_DIR"]) / f"running-{data_file_id}").write_text(str(os.getpid()))


def _log_bulk(lines: int) -> None:
    """Log lines of random text, which gzip cannot shrink: a large log, to upload slowly."""
    for number in range(lines):
        records.info("bulk %d %s", number, base64.b64encode(os.urandom(768)).decode())


@shared_task
def slow_parse(
    data_file_id: int,
    reparse_id: int | None = None,
    seconds: float = 30.0,
    lines: int = 3,
    unprintable: bool = False,
) -> int:
    """Logs a few lines (after a record no formatter can print, if asked), says which
    process it runs in, then waits to be killed or timed out."""
    if unprintable:
        records.info("an argument that cannot be printed: %s", _Unprintable())
    for number in range(lines):
        records.info("slow record %d of file %s", number, data_file_id)
    _say_running(data_file_id)
    time.sleep(seconds)
    records.info("slow parse of file %s finished", data_file_id)
    return data_file_id


@shared_task(bind=True, max_retries=3)
def retried_parse(self: Any, data_file_id: int, reparse_id: int | None = None) -> int:
    """Fails its first two attempts with ``self.retry()``."""
    attempt = int(self.request.retries) + 1
    records.info("attempt %d of file %s", attempt, data_file_id)
    if attempt < 3:
        raise self.retry(countdown=0.1, exc=ValueError(f"not yet, attempt {attempt}"))
    return attempt


@shared_task(autoretry_for=(ValueError,), retry_kwargs={"max_retries": 3, "countdown": 0.1})
def autoretried_parse(data_file_id: int, reparse_id: int | None = None) -> int:
    """Fails its first attempt; Celery retries it through ``autoretry_for``."""
    attempt = _count_run(f"attempts-{data_file_id}")
    records.info("attempt %d of file %s", attempt, data_file_id)
    if attempt < 2:
        raise ValueError(f"not yet, attempt {attempt}")
    return attempt


@shared_task(acks_late=True, reject_on_worker_lost=True)
def redelivered_parse(data_file_id: int, reparse_id: int | None = None, lines: int = 3) -> int:
    """Acknowledged late, and requeued when its worker is lost: the message's first
    delivery logs a few lines and waits to be killed, the next one logs its own and succeeds.
    Returns which delivery it was."""
    delivery = _count_run(f"deliveries-{data_file_id}")
    for number in range(lines):
        records.info("delivery %d record %d of file %s", delivery, number, data_file_id)
    if delivery == 1:
        _say_running(data_file_id)
        time.sleep(120)
    return delivery


# Celery 5.7's task option, which the type stubs do not know yet.
_RETRY_ON_WORKER_LOST: dict[str, Any] = {"retry_on_worker_lost": True}


@shared_task(bind=True, default_retry_delay=0, max_retries=3, **_RETRY_ON_WORKER_LOST)
def lost_attempt_parse(
    self: Any, data_file_id: int, reparse_id: int | None = None, bulk: int = 0
) -> int:
    """Retried by Celery when its worker is lost (``retry_on_worker_lost``): the first
    attempt logs ``bulk`` large lines and waits to be killed, the second succeeds."""
    attempt = int(self.request.retries) + 1
    records.info("attempt %d of file %s", attempt, data_file_id)
    if attempt == 1:
        _log_bulk(bulk)
        _say_running(data_file_id)
        time.sleep(120)
    return attempt


def _retry_on_worker_lost(
    sender: Any = None,
    task_id: str = "",
    exception: Any = None,
    args: Any = (),
    kwargs: Any = None,
    **_: Any,
) -> None:
    """What ``retry_on_worker_lost`` does in Celery 5.7, for the Celery versions before it:
    send the task again as its next attempt when its child was lost. Such projects did this
    with a ``task_failure`` receiver in the worker's main process."""
    if not getattr(sender, "retry_on_worker_lost", False):
        return
    if not isinstance(exception, WorkerLostError):
        return
    request = sender.request
    retries = int(request.retries or 0) if request.id == task_id else 0
    queue = next(iter(sender.app.amqp.queues.consume_from or ()), None)
    sender.apply_async(args, kwargs, task_id=task_id, retries=retries + 1, queue=queue, countdown=0)


if not hasattr(Task, "retry_on_worker_lost"):
    task_failure.connect(_retry_on_worker_lost, weak=False, dispatch_uid="e2eproj.retry_lost")


@shared_task(bind=True, max_retries=3)
def overtaken_parse(
    self: Any, data_file_id: int, reparse_id: int | None = None, bulk: int = 0
) -> int:
    """Retried twice with ``self.retry()``; only the first attempt logs ``bulk`` large lines,
    so on a slow link its upload is still going on when the later attempts are done."""
    attempt = int(self.request.retries) + 1
    records.info("attempt %d of file %s", attempt, data_file_id)
    if attempt == 1:
        _log_bulk(bulk)
    if attempt < 3:
        raise self.retry(countdown=0)
    return attempt


@shared_task
def rejected_parse(data_file_id: int, reparse_id: int | None = None) -> None:
    records.info("rejecting file %s", data_file_id)
    raise Reject(f"file {data_file_id} is not ours", requeue=False)


@shared_task
def ignored_parse(data_file_id: int, reparse_id: int | None = None) -> None:
    records.info("ignoring file %s", data_file_id)
    raise Ignore()


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


@shared_task
def messy_parse(data_file_id: str, reparse_id: int | None = None) -> str:
    """Everything awkward a parser may log, then a logging reconfiguration mid-run."""
    records.info("name from a legacy file: %s", b"caf\xe9".decode("utf-8", "surrogateescape"))
    records.info("huge line: %s", "x" * 10_000_000)
    records.info("an argument that cannot be printed: %s", _Unprintable())
    logging.config.dictConfig(
        {"version": 1, "disable_existing_loggers": False, "root": {"handlers": [], "level": "INFO"}}
    )
    time.sleep(1.5)
    records.info("still captured after the task reconfigured logging")
    return data_file_id


@shared_task
def sensitive_parse(
    data_file_id: int, reparse_id: int | None = None, contact: str = "", count: int = 300
) -> int:
    """Logs a synthetic corpus full of personal data and secrets, every way a parser might:
    in messages, arguments, exceptions, extra fields and print(); pauses half-way so the
    test can read the spool file while the run is going on."""
    from celery_parselog import register_secret
    from tests.unit.redaction_corpus import REGISTERED_SECRETS, sensitive_lines

    for secret in REGISTERED_SECRETS:
        register_secret(secret, "broker_password")
    lines = sensitive_lines(count)
    for number, line in enumerate(lines):
        records.info("corpus line: %s", line.text)
        if number == len(lines) // 2:
            (Path(os.environ["E2E_STATE_DIR"]) / f"running-{data_file_id}").write_text("1")
            time.sleep(1.5)
    first_value = lines[0].values[0][1]
    try:
        raise ValueError(f"record rejected for {first_value}")
    except ValueError:
        records.exception("could not parse the record of %s", contact)
    records.warning("contact on file", extra={"contact": contact, "customer": first_value})
    print("calling", contact, "about", first_value)
    return data_file_id


@shared_task
def identifiers_parse(
    data_file_id: int, reparse_id: int | None = None, case_number: str = "", count: int = 300
) -> int:
    """Logs the records parser's corpus of identifiers (database errors, record lines,
    reprs, substituted SSNs), then fails with one of its values in the error."""
    from tests.unit.identifiers_corpus import identifier_lines

    lines = identifier_lines(count)
    for line in lines:
        records.info("corpus line: %s", line.text)
    records.warning("case on file", extra={"case_number": case_number})
    print("case", case_number, "done")
    raise ValueError(f"case {case_number} could not be saved: {lines[0].values[0][1]}")


def _log_in_pool_worker(data_file_id: int, worker: int, lines: int) -> int:
    """One job of a task's own process pool: it logs the way the task does. Random text
    keeps gzip from shrinking the lines, so a buffered compressor would have flushed."""
    for number in range(lines):
        records.info(
            "pool job %d line %d of file %s %s", worker, number, data_file_id, os.urandom(24).hex()
        )
    return worker


@shared_task
def forking_parse(
    data_file_id: int, reparse_id: int | None = None, workers: int = 2, lines: int = 2000
) -> int:
    """Spreads its work over a fork-based ``multiprocessing`` pool whose jobs log, as a
    CPU-bound parser does; logs a line of its own before and after."""
    records.info("pool of file %s starts", data_file_id)
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        done = pool.starmap(
            _log_in_pool_worker, [(data_file_id, job, lines) for job in range(workers * 2)]
        )
    finally:
        # Not terminate(), as leaving a ``with`` block does: the forked processes carry
        # the worker's own SIGTERM handler, so they would not end and join() would hang.
        pool.close()
        pool.join()
    records.info("pool of file %s done: %d jobs", data_file_id, len(done))
    return len(done)
