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
import string
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
from celery_parselog.redaction import cached_redactor
from celery_parselog.signals import log_uploaded

if TYPE_CHECKING:
    from celery_parselog.models import TaskLog

__all__ = [
    "announce",
    "expired_runs",
    "record_finished",
    "record_lost",
    "record_recovered",
    "record_started",
    "render_subject",
    "renew_leases",
]

logger = logging.getLogger("celery_parselog.records")

# Longest JSON text kept for one argument; a longer one is kept as a cut repr, so a
# task called with a whole file's content does not put that content in the database.
_MAX_ARGUMENT_CHARS = 4096
_SUBJECT_LENGTH = 255  # TaskLog.subject's max_length

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

    ``arguments`` are the task's parameters bound to its signature (what the key
    template sees), used for the subject; ``args`` and ``kwargs`` are kept as given.
    A run of the same delivery seen again (its prerun ran twice) starts its row afresh;
    a redelivered message is another delivery, with a row of its own.
    """
    try:
        config = ParselogSettings()
        if not config.records:
            return
        from celery_parselog.models import TaskLog

        started = _moment(entry.started) or timezone.now()
        subject = _subject(config.subject, arguments, entry=entry, started=started)
        kept_args, kept_kwargs = _safe_arguments(args, kwargs) if config.keep_args else (None, None)
        worker = identity()
        TaskLog.objects.update_or_create(
            task_id=entry.task_id,
            attempt=entry.attempt,
            delivery=entry.delivery,
            defaults={
                "task_name": entry.task_name,
                "hostname": hostname[:255],
                # The lease, in this same write: a worker's row starts with a fresh one.
                "worker": worker,
                "heartbeat": Now() if worker else None,
                "subject": subject,
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
            },
        )
    except Exception:
        logger.exception("Could not record the start of %s[%s]", entry.task_name, entry.task_id)


def record_finished(entry: RunEntry, *, first_error: str | None) -> TaskLog | None:
    """Complete the row of a run from its final entry (stored or failed).

    Creates the row if its start was never recorded. Sends
    :data:`~celery_parselog.signals.log_uploaded` when the log is stored. Returns the
    row, or ``None`` when rows are off or it could not be written.
    """
    return _complete(entry, first_error=first_error, recovered=False)


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
        return render_subject(template, fields)
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
    ``_MAX_ARGUMENT_CHARS``, is kept as its ``repr`` (cut to that length).
    Every string in them is redacted with ``CELERY_PARSELOG_REDACT`` before it is
    kept, so nothing unredacted reaches the database.
    """
    redact = cached_redactor(ParselogSettings().redact).redact
    return [_redacted(_json_safe(value), redact) for value in args], {
        str(name): _redacted(_json_safe(value), redact) for name, value in kwargs.items()
    }


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` with every string in it redacted, however deeply it is nested."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(item, redact) for item in value]
    if isinstance(value, dict):
        return {name: _redacted(item, redact) for name, item in value.items()}
    return value


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
    entry: RunEntry, *, first_error: str | None, recovered: bool, hostname: str = ""
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
    if row.upload_status == Status.STORED.value:
        announce(row)
    return row


def _save_final(
    entry: RunEntry, *, first_error: str | None, recovered: bool, hostname: str
) -> TaskLog:
    from celery_parselog.models import TaskLog

    row: TaskLog | None = TaskLog.objects.filter(
        task_id=entry.task_id, attempt=entry.attempt, delivery=entry.delivery
    ).first()
    started = _moment(entry.started)
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
        row.first_error = first_error
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
