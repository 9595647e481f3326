"""Writing ``TaskLog`` rows: the only module that does, called by the receivers and recovery.

A row follows the ``parselog`` entry of its run: :func:`record_started` when the run
starts, :func:`record_finished` once its log is stored (or its upload gave up), and
:func:`record_recovered` when recovery stores a log a run left behind. A running row
also carries a lease (see :mod:`celery_parselog.lease`): :func:`renew_leases` renews a
worker's, :func:`expired_runs` finds those of workers that are gone, and
:func:`record_lost` marks such a run ``lost``. None of them
ever raises: a database that is down, slow to migrate or locked must not break the
task, so every failure is logged through ``celery_parselog.records`` and swallowed.
With ``CELERY_PARSELOG_RECORDS = False`` they return at once.

The model is imported inside the functions, not at the top: the receivers import
this module while Django is still importing the installed apps, before models can be.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from celery_parselog.conf import ParselogSettings
from celery_parselog.entry import RunEntry, Status
from celery_parselog.lease import identity
from celery_parselog.redaction import cached_redactor, redact_json
from celery_parselog.signals import log_uploaded

if TYPE_CHECKING:
    from celery_parselog.models import TaskLog

__all__ = [
    "RowWriter",
    "announce",
    "expired_runs",
    "flush_rows",
    "in_order",
    "record_finished",
    "record_lost",
    "record_recovered",
    "record_started",
    "render_subject",
    "renew_leases",
    "start_fields",
    "write_rows_in_background",
]

logger = logging.getLogger("celery_parselog.records")

# Longest JSON text kept for one argument; a longer one is kept as a cut repr, so a
# task called with a whole file's content does not put that content in the database.
_MAX_ARGUMENT_CHARS = 4096
_SUBJECT_LENGTH = 255  # TaskLog.subject's max_length

# How long the background writer holds a run's start, waiting for its end: a run that
# ends sooner (most tasks) gets one INSERT instead of an INSERT and an UPDATE, and a
# longer one shows as running in the admin after this long.
HOLD_START = 0.25
# How long the background writer gathers the ends of runs before it writes them
# together, from the first one (see RowWriter).
GATHER_ENDS = 0.05

# A step a caller has run around a row's final write (see record_finished).
Step = Callable[[], None]

# Celery's state names and the row's state for each; others are "finished".
_STATES = {
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "RETRY": "retried",
    "REVOKED": "revoked",
}


def record_started(
    entry: RunEntry,
    *,
    hostname: str,
    arguments: Mapping[str, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> None:
    """Create (or reset) the row of a run that just started, from its pending entry.

    Written at once, or queued to the :class:`RowWriter` in a process that writes rows
    in the background (workers do).

    ``arguments`` are the task's parameters bound to its signature (what the key
    template sees), used for the subject; ``args`` and ``kwargs`` are kept as given.
    A run of the same delivery seen again (its prerun ran twice) starts its row afresh;
    a redelivered message is another delivery, with a row of its own.
    """
    try:
        fields = start_fields(
            entry, hostname=hostname, arguments=arguments, args=args, kwargs=kwargs
        )
        if fields is None:
            return
        writer = _background()
        if writer is not None:
            writer.started(entry, fields)
        else:
            _save_start(entry, fields)
    except Exception:
        logger.exception("Could not record the start of %s[%s]", entry.task_name, entry.task_id)


def start_fields(
    entry: RunEntry,
    *,
    hostname: str,
    arguments: Mapping[str, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The fields of a starting run's row, or ``None`` when rows are off.

    Made when the run starts (the task may change its arguments later), written then
    or by the background writer.
    """
    config = ParselogSettings()
    if not config.records:
        return None
    started = _moment(entry.started) or timezone.now()
    kept_args, kept_kwargs = _safe_arguments(args, kwargs) if config.keep_args else (None, None)
    worker = identity()
    return {
        "task_name": entry.task_name,
        "hostname": hostname[:255],
        # The lease, in this same write: a worker's row starts with a fresh one.
        "worker": worker,
        "heartbeat": Now() if worker else None,
        "subject": _subject(config.subject, arguments, entry=entry, started=started),
        "args": kept_args,
        "kwargs": kept_kwargs,
        "state": "running",
        "task_state": "",
        "started": _db_time(started),
        "finished": None,
        "duration": None,
        "recovered": None,
        "redelivery_of": entry.redelivery_of or "",
        "storage": entry.storage,
        "key": entry.key,
        "uri": entry.uri,
        "bytes": None,
        "sha256": "",
        "complete": None,
        "incomplete_reason": "",
        "upload_status": "pending",
        "upload_error": "",
        "counts": {},
        "first_error": "",
    }


def _save_start(entry: RunEntry, fields: Mapping[str, Any]) -> None:
    from celery_parselog.models import TaskLog

    TaskLog.objects.update_or_create(
        task_id=entry.task_id,
        attempt=entry.attempt,
        delivery=entry.delivery,
        defaults=dict(fields),
    )


def record_finished(
    entry: RunEntry,
    *,
    first_error: str | None,
    before: Step | None = None,
    after: Step | None = None,
) -> TaskLog | None:
    """Complete the row of a run from its final entry (stored or failed).

    Creates the row if its start was never recorded. Sends
    :data:`~celery_parselog.signals.log_uploaded` when the log is stored. Returns the
    row, or ``None`` when rows are off, it could not be written, or it was queued to the
    background writer.

    ``before`` runs just before the row is written and ``after`` once it is (and the
    signal sent), in this thread or, with the row, in the background writer's: the
    caller's steps keep their order around the row wherever it is written. Both run
    even when rows are off; a step's failure is logged and stops nothing.
    """
    writer = _background()
    if writer is not None:
        writer.finished(entry, first_error, before=before, after=after)
        return None
    _run_step(before, entry)
    try:
        return _complete(entry, first_error=first_error, recovered=False)
    finally:
        _run_step(after, entry)


def in_order(entry: RunEntry, step: Step) -> None:
    """Run a step of ``entry``'s run in order with its rows: queued to the
    :class:`RowWriter` in a process that writes rows in the background, at once otherwise.

    For what a run must record while it goes on but need not wait for (its pending
    entry): queued behind the run's start and ahead of its end, it can never land after
    the run's final entry. Its failure is logged and stops nothing.
    """
    writer = _background()
    if writer is not None:
        writer.step(entry, step)
    else:
        _run_step(step, entry)


def record_recovered(entry: RunEntry, *, hostname: str = "") -> TaskLog | None:
    """Complete the row of a run whose log recovery stored, creating it if need be.

    A run that never reached its end is marked ``lost``. Sends
    :data:`~celery_parselog.signals.log_uploaded`, like :func:`record_finished`.
    """
    return _complete(entry, first_error=None, recovered=True, hostname=hostname)


def renew_leases(worker: str) -> int:
    """Renew the leases of every running row of ``worker``, in one ``UPDATE``.

    Returns how many rows it renewed (0 when rows are off or the database failed).
    """
    try:
        if not worker or not ParselogSettings().records:
            return 0
        from celery_parselog.models import TaskLog

        _tidy_connections()
        return int(TaskLog.objects.filter(worker=worker, state="running").update(heartbeat=Now()))
    except Exception:
        logger.exception("Could not renew the leases of the runs of %s", worker)
        return 0


def _expired(seconds: float) -> Any:
    return Now() - timedelta(seconds=seconds)


def expired_runs(seconds: float, *, besides: str = "") -> list[TaskLog]:
    """The running rows whose lease was last renewed more than ``seconds`` ago.

    Rows of the worker ``besides`` (the caller's own, which is alive) are left out.
    """
    try:
        if not ParselogSettings().records:
            return []
        from celery_parselog.models import TaskLog

        _tidy_connections()
        rows = TaskLog.objects.filter(
            state="running", heartbeat__isnull=False, heartbeat__lt=_expired(seconds)
        )
        if besides:
            rows = rows.exclude(worker=besides)
        return list(rows.order_by("heartbeat")[:1000])
    except Exception:
        logger.exception("Could not look for runs whose worker was lost")
        return []


def record_lost(row: TaskLog, entry: RunEntry, *, seconds: float) -> TaskLog | None:
    """Mark ``row`` lost, pointing at ``entry``'s log, if its lease is still expired.

    The lease is checked again in the same ``UPDATE``, so of several sweepers one only
    marks the run, and a run that ended or was renewed since it was found is left alone.
    Returns the row as marked, or ``None`` when another sweeper or the run got there
    first (or the database failed). Sends nothing: the caller publishes the entry, then
    calls :func:`announce`.
    """
    try:
        from celery_parselog.models import TaskLog

        marked = TaskLog.objects.filter(
            pk=row.pk, state="running", heartbeat__lt=_expired(seconds)
        ).update(
            state="lost",
            storage=entry.storage or row.storage,
            key=entry.key or row.key,
            uri=entry.uri or row.uri,
            bytes=entry.bytes,
            sha256=entry.sha256 or "",
            complete=False,
            incomplete_reason=(entry.incomplete_reason or "")[:255],
            upload_status=entry.status.value,
            upload_error=entry.error or "",
        )
        return TaskLog.objects.get(pk=row.pk) if marked else None
    except Exception:
        logger.exception("Could not mark %s lost", row)
        return None


def render_subject(template: str, fields: Mapping[str, Any]) -> str:
    """The subject a template gives for one run's fields.

    Unlike a key, a subject is not a path, so values are kept as they are, except
    control characters; it is cut to fit the column. Raises ``KeyError`` for a field
    the run lacks and ``ValueError`` for a malformed template.
    """
    text = string.Formatter().vformat(template, (), dict(fields))
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return cleaned[:_SUBJECT_LENGTH]


def _subject(
    template: str | None,
    arguments: Mapping[str, Any],
    *,
    entry: RunEntry,
    started: datetime,
) -> str:
    if not template:
        return ""
    fields = {
        **arguments,
        "task_name": entry.task_name,
        "task_id": entry.task_id,
        "attempt": entry.attempt,
        "delivery": entry.delivery,
        "root_id": entry.root_id or entry.task_id,
        "started": started,
    }
    try:
        # Redacted before it becomes a column anyone with the admin can search.
        return _redactor()(render_subject(template, fields))
    except Exception as error:  # noqa: BLE001 - a subject is a convenience; the row is kept
        logger.warning(
            "CELERY_PARSELOG_SUBJECT %r gives no subject for %s[%s]: %r",
            template,
            entry.task_name,
            entry.task_id,
            error,
        )
        return ""


def _safe_arguments(
    args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """The task's arguments as values JSON (and so the row's JSONField) can hold.

    Each value that JSON cannot hold, or whose JSON is longer than
    ``_MAX_ARGUMENT_CHARS``, is kept as its ``repr`` (cut to that length). The whole
    is then redacted with ``CELERY_PARSELOG_REDACT`` as one JSON text, so that dict keys
    give their values away to the rules (``{"ssn": 123456789}``) and numbers and keys
    are masked as well as strings: nothing unredacted reaches the database.
    """
    kept = redact_json(
        {
            "args": [_json_safe(value) for value in args],
            "kwargs": {str(name): _json_safe(value) for name, value in kwargs.items()},
        },
        _redactor(),
    )
    assert isinstance(kept, dict)
    return list(kept["args"]), dict(kept["kwargs"])


def _redactor() -> Callable[[str], str]:
    return cached_redactor(ParselogSettings().redact).redact


def _json_safe(value: Any) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        pass
    else:
        if len(text) <= _MAX_ARGUMENT_CHARS:
            return value
    try:
        shown = repr(value)
    except Exception:  # noqa: BLE001 - an argument's own __repr__ may raise anything
        shown = f"<unrepresentable {type(value).__name__}>"
    if len(shown) > _MAX_ARGUMENT_CHARS:
        shown = shown[: _MAX_ARGUMENT_CHARS - 1] + "…"
    return shown


def _complete(
    entry: RunEntry,
    *,
    first_error: str | None,
    recovered: bool,
    hostname: str = "",
) -> TaskLog | None:
    try:
        if not ParselogSettings().records:
            return None
        if recovered:
            _tidy_connections()
        row = _save_final(entry, first_error=first_error, recovered=recovered, hostname=hostname)
    except Exception:
        logger.exception(
            "Could not record the %s log of %s (attempt %s)",
            "recovered" if recovered else "final",
            entry.task_id,
            entry.attempt,
        )
        return None
    _announce_if_stored(row)
    return row


def _announce_if_stored(row: TaskLog | None) -> None:
    """Send ``log_uploaded`` for a written row whose log is stored (a failed upload sends none)."""
    if row is not None and row.upload_status == Status.STORED.value:
        announce(row)


def _save_final(
    entry: RunEntry,
    *,
    first_error: str | None,
    recovered: bool,
    hostname: str,
    start: Mapping[str, Any] | None = None,
) -> TaskLog:
    from celery_parselog.models import TaskLog

    started = _moment(entry.started)
    row: TaskLog | None
    if start is not None:
        # The start was never written (the background writer got both at once): one
        # INSERT instead of an INSERT and an UPDATE.
        row = TaskLog(
            task_id=entry.task_id, attempt=entry.attempt, delivery=entry.delivery, **start
        )
    else:
        row = TaskLog.objects.filter(
            task_id=entry.task_id, attempt=entry.attempt, delivery=entry.delivery
        ).first()
    if row is None:
        # The start was never recorded (database down then, or rows just turned on).
        row = TaskLog(
            task_id=entry.task_id,
            attempt=entry.attempt,
            delivery=entry.delivery,
            redelivery_of=entry.redelivery_of or "",
            task_name=entry.task_name[:255],
            hostname=hostname[:255],
            started=_db_time(started or timezone.now()),
        )
    finished = _moment(entry.finished)
    row.task_state = str(entry.task_state or "")[:32]
    row.state = _state(finished=finished is not None, task_state=entry.task_state)
    row.finished = _db_time(finished) if finished else None
    row.duration = _duration(started, finished)
    if recovered:
        row.recovered = _db_time(_moment(entry.recovered) or timezone.now())
    row.storage = entry.storage or row.storage
    row.key = entry.key or row.key
    row.uri = entry.uri or row.uri
    row.bytes = entry.bytes
    row.sha256 = entry.sha256 or ""
    row.complete = entry.complete
    row.incomplete_reason = (entry.incomplete_reason or "")[:255]
    row.upload_status = entry.status.value
    row.upload_error = entry.error or ""
    if entry.finished_run or entry.counts:
        row.counts = {str(level): int(number) for level, number in entry.counts.items()}
    if first_error is not None:
        row.first_error = _redactor()(first_error)
    # A savepoint when called inside a transaction, so a failed write leaves it usable.
    with transaction.atomic():
        row.save()
    return row


def _tidy_connections() -> None:
    """Drop database connections that broke or outlived ``CONN_MAX_AGE``.

    Recovery runs in a worker's long-lived sweeper thread, which no request or task
    cycle tidies (Celery does it around tasks): without this, one database restart
    would leave that thread's connection broken for good. Never inside a transaction,
    whose connection must not be closed under it.
    """
    if not _in_transaction():
        close_old_connections()


def _in_transaction() -> bool:
    return bool(transaction.get_connection().in_atomic_block)


def announce(row: TaskLog) -> None:
    """Send ``log_uploaded``; a receiver's failure is logged, never raised into the task."""
    try:
        responses = log_uploaded.send_robust(sender=type(row), task_log=row)
    except Exception:
        logger.exception("Could not send log_uploaded for %s", row)
        return
    for receiver, response in responses:
        if isinstance(response, BaseException):
            logger.error(
                "A log_uploaded receiver (%r) failed for %s",
                receiver,
                row,
                exc_info=(type(response), response, response.__traceback__),
            )


def _state(*, finished: bool, task_state: Any) -> str:
    if not finished:
        return "lost"
    if task_state is None:
        return "interrupted"
    return _STATES.get(str(task_state), "finished")


def _moment(value: Any) -> datetime | None:
    """An entry's ISO time as an aware datetime (UTC when it carries no offset)."""
    if isinstance(value, datetime):
        moment: datetime | None = value
    elif isinstance(value, str) and value:
        try:
            moment = parse_datetime(value)
        except ValueError:
            moment = None
    else:
        moment = None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt_timezone.utc)
    return moment


def _db_time(moment: datetime) -> datetime:
    """What a DateTimeField accepts: aware with ``USE_TZ``, naive local time without it."""
    if settings.USE_TZ:
        return moment
    return timezone.make_naive(moment, timezone.get_default_timezone())


def _duration(started: datetime | None, finished: datetime | None) -> timedelta | None:
    if started is None or finished is None or finished < started:
        return None
    return finished - started


# -- writing rows from a thread of the worker's own -------------------------------------


class RowWriter(threading.Thread):
    """Writes the rows of this process's runs from a thread of its own.

    Celery's Django fixup closes the task thread's database connection around every
    task, so a row written from the task's thread pays for a new connection each time
    (about 1 ms on SQLite, 5 ms on PostgreSQL, twice per run). This thread keeps its
    connection, and takes the task's rows off its path. A run's start is held for
    ``HOLD_START`` seconds: a run that ends within it (most tasks) is written as one
    INSERT, and a longer one shows as running from then on.

    Ends are gathered for ``GATHER_ENDS`` seconds from the first one and written
    together, in one transaction: one commit (a journal write and its sync on SQLite,
    a round trip on PostgreSQL) for every run that ended meanwhile, and one wake-up of
    this thread, instead of one each. The log is stored by then; only its entry and
    row are that much later.

    The steps a run takes around its final row (publishing its entry before, removing
    its spool files and letting go of their lock after; see
    :func:`~celery_parselog.delivery.deliver`) run here too, and so does the write of
    its pending entry (:func:`in_order`), at once, so the task waits for none of those
    round trips either.

    Order is kept: rows are written in the order runs asked, each run's entry is
    published before its row is saved, and ``log_uploaded`` is sent and the run's
    files removed once the row is committed. A run's spool files stay, locked, until
    then: a process killed before leaves them to recovery, which rebuilds the row.
    """

    _FLUSH_TIMEOUT = 10.0

    def __init__(self) -> None:
        super().__init__(name="celery-parselog-rows", daemon=True)
        self._queue: queue.SimpleQueue[tuple[str, RunEntry, Any]] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lock = threading.Lock()
        # Starts held for their end, by run; ends gathered for one transaction.
        self._held: dict[tuple[str, int, int], tuple[RunEntry, Any, float]] = {}
        self._ends: list[tuple[RunEntry, Any]] = []
        self._ends_since = 0.0

    def started(self, entry: RunEntry, fields: Mapping[str, Any]) -> None:
        self._put(("start", entry, fields))

    def finished(
        self,
        entry: RunEntry,
        first_error: str | None,
        *,
        before: Step | None = None,
        after: Step | None = None,
    ) -> None:
        self._put(("finish", entry, (first_error, before, after)))

    def step(self, entry: RunEntry, step: Step) -> None:
        self._put(("step", entry, step))

    def _put(self, item: tuple[str, RunEntry, Any]) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put(item)

    def flush(self, timeout: float = _FLUSH_TIMEOUT) -> bool:
        """Wait until every queued row is written; ``False`` if that took too long."""
        return self._idle.wait(timeout)

    def run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._wait())
            except queue.Empty:
                done = 0
            else:
                done = self._take(item)
            done += self._write_due(time.monotonic())
            with self._lock:
                self._pending -= done
                if not self._pending:
                    self._idle.set()

    def _wait(self) -> float | None:
        """How long nothing is due: until the oldest held start's or gathered end's time."""
        due = [since + HOLD_START for _, _, since in self._held.values()]
        if self._ends:
            due.append(self._ends_since + GATHER_ENDS)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _take(self, item: tuple[str, RunEntry, Any]) -> int:
        """Hold a start, gather an end or run a step; returns how many items are done with."""
        kind, entry, extra = item
        now = time.monotonic()
        if kind == "start":
            run = _run_of(entry)
            # The same delivery seen again starts its row afresh: the later start wins.
            done = int(run in self._held)
            self._held[run] = (entry, extra, now)
            return done
        if kind == "finish":
            if not self._ends:
                self._ends_since = now
            self._ends.append((entry, extra))
            return 0
        _run_step(extra, entry)
        return 1

    def _write_due(self, now: float) -> int:
        """Write the gathered ends once their time is up, then the starts held long enough."""
        ends: list[tuple[RunEntry, Any]] = []
        if self._ends and now - self._ends_since >= GATHER_ENDS:
            ends, self._ends = self._ends, []
        # An end takes its run's held start with it: the two are written as one row.
        starts = [self._held.pop(_run_of(entry), None) for entry, _ in ends]
        due = [run for run, (_, _, since) in self._held.items() if now - since >= HOLD_START]
        if not ends and not due:
            return 0
        _tidy_connections()
        done = len(ends) + sum(start is not None for start in starts)
        if ends:
            _finish_together(ends, [start[1] if start else None for start in starts])
        for run in due:
            entry, fields, _ = self._held.pop(run)
            done += 1
            try:
                _save_start(entry, fields)
            except Exception:
                logger.exception(
                    "Could not record the start of %s[%s]", entry.task_name, entry.task_id
                )
        return done


def _finish_together(
    ends: Sequence[tuple[RunEntry, Any]], starts: Sequence[Mapping[str, Any] | None]
) -> None:
    """Complete the rows of runs that ended, in one transaction, keeping each run's steps
    in order around its row: every ``before`` first, then the rows, then, once they are
    committed, ``log_uploaded`` and every ``after``."""
    for entry, (_, before, _) in ends:
        _run_step(before, entry)
    rows: list[TaskLog | None] = [None] * len(ends)
    try:
        if ParselogSettings().records:
            with transaction.atomic():
                for index, ((entry, (first_error, _, _)), start) in enumerate(
                    zip(ends, starts, strict=True)
                ):
                    rows[index] = _save_final_logged(entry, first_error=first_error, start=start)
    except Exception:
        logger.exception("Could not record the final logs of %d runs", len(ends))
        rows = [None] * len(ends)
    for (entry, (_, _, after)), row in zip(ends, rows, strict=True):
        _announce_if_stored(row)
        _run_step(after, entry)


def _save_final_logged(
    entry: RunEntry, *, first_error: str | None, start: Mapping[str, Any] | None
) -> TaskLog | None:
    """One run's final row inside a batch; its failure is logged and rolls back only it."""
    try:
        return _save_final(
            entry, first_error=first_error, recovered=False, hostname="", start=start
        )
    except Exception:
        logger.exception(
            "Could not record the final log of %s (attempt %s)", entry.task_id, entry.attempt
        )
        return None


def _run_step(step: Step | None, entry: RunEntry) -> None:
    """Run a caller's step; its failure is logged, and the row and the next step go on."""
    if step is None:
        return
    try:
        step()
    except Exception:
        logger.exception("A step of the run of %s[%s] failed", entry.task_name, entry.task_id)


def _run_of(entry: RunEntry) -> tuple[str, int, int]:
    return entry.task_id, entry.attempt, entry.delivery


_writer: RowWriter | None = None
_writer_pid = 0
_in_background = False


def write_rows_in_background(enabled: bool = True) -> None:
    """Have this process's runs write their rows from the :class:`RowWriter` (workers do)."""
    global _in_background
    _in_background = enabled


def _background() -> RowWriter | None:
    global _writer, _writer_pid
    if not _in_background:
        return None
    if _writer is None or _writer_pid != os.getpid():  # threads do not survive a fork
        _writer, _writer_pid = RowWriter(), os.getpid()
        _writer.start()
    return _writer


def flush_rows(timeout: float = RowWriter._FLUSH_TIMEOUT) -> bool:
    """Write every queued row before this process ends; ``True`` when none is left."""
    writer = _writer
    if writer is None or _writer_pid != os.getpid():
        return True
    done = writer.flush(timeout)
    if not done:
        logger.warning("Some run records were not written within %ss", timeout)
    return done
