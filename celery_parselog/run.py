"""One captured run, from ``task_prerun`` to its last cleanup: :class:`Run`.

A run owns everything of its own: the capture (its spool file), its entry, its
context token, its checkpoint clock and the lock that keeps a checkpoint's upload
and the final upload apart. The receivers find the run in the current context and
call it; the router's watcher thread calls :meth:`Run.tick`. Nothing calls back up.

Read top to bottom, the life of a run is :meth:`Run.start` (key, spool file,
manifest, row, pending entry), :meth:`Run.tick` (sync, checkpoint) while the task
runs, and :meth:`Run.finish` (close the spool, then :func:`~celery_parselog.delivery.deliver`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from contextvars import Token
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from celery import states
from celery.backends.base import BaseKeyValueStoreBackend
from django.core.files.storage import storages

from celery_parselog import metrics
from celery_parselog.capture import RunCapture
from celery_parselog.delivery import HOSTNAME, Destination, deliver, save_manifest
from celery_parselog.entry import RunEntry, Status, iso
from celery_parselog.formatting import INTERRUPTED_NOTE, build_formatter
from celery_parselog.keys import (
    KeyContext,
    KeyRenderError,
    bind_arguments,
    render_key,
    with_delivery,
)
from celery_parselog.metadata import mark_checkpoint, mark_pending, read_entry
from celery_parselog.records import in_order, record_started
from celery_parselog.redaction import Redactor
from celery_parselog.routing import LoggerSelection
from celery_parselog.selection import TaskSelector
from celery_parselog.spool import checkpoint_copy_path
from celery_parselog.storage import UploadError, storage_uri, store_log

__all__ = ["FALLBACK_KEY", "CaptureConfig", "Run"]

logger = logging.getLogger("celery_parselog")

FALLBACK_KEY = "parselog/{task_name}/{task_id}-{attempt}.log"


@dataclass(frozen=True)
class CaptureConfig:
    """The settings as one worker process uses them, validated once when capture starts."""

    selector: TaskSelector
    levelno: int
    loggers: LoggerSelection
    format: str
    compress_level: int
    max_bytes: int
    redactor: Redactor
    storage: str
    key: Any
    spool_dir: Path
    upload_attempts: int
    upload_backoff: float
    recovery_interval: float
    checkpoint_seconds: float

    @classmethod
    def from_settings(cls, source: Any = None) -> CaptureConfig:
        from celery_parselog.conf import ParselogSettings
        from celery_parselog.redaction import cached_redactor

        settings = source or ParselogSettings()
        return cls(
            selector=TaskSelector(settings.tasks),
            levelno=settings.level,
            loggers=LoggerSelection(settings.loggers),
            format=settings.format,
            compress_level=settings.compress_level,
            max_bytes=settings.max_bytes,
            redactor=cached_redactor(settings.redact),
            storage=settings.storage,
            key=settings.key,
            spool_dir=settings.spool_dir,
            upload_attempts=settings.upload_attempts,
            upload_backoff=settings.upload_backoff,
            recovery_interval=settings.recovery_interval,
            checkpoint_seconds=settings.checkpoint_seconds,
        )

    @property
    def destination(self) -> Destination:
        return Destination(self.storage, self.upload_attempts, self.upload_backoff)


class Run:
    """One run of a selected task in this process."""

    def __init__(
        self, config: CaptureConfig, capture: RunCapture, entry: RunEntry, backend: Any
    ) -> None:
        self.config = config
        self.capture = capture
        self.entry = entry
        self.backend = backend
        # Set by the router when it starts routing this context's records here.
        self.token: Token[Any] | None = None
        self._checkpoint_every = config.checkpoint_seconds
        self._next_checkpoint = time.monotonic() + config.checkpoint_seconds
        # Digest of the last checkpoint this run stored: the proof, for recovery, that
        # the object under its key is this run's own and may be replaced.
        self._checkpoint_sha256: str | None = None
        # Held by a checkpoint's upload and by the final upload, so a slow checkpoint
        # can never land on top of the final log.
        self._upload_lock = threading.Lock()
        self._finished = False

    @property
    def task_id(self) -> str:
        return self.entry.task_id

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def uri(self) -> str:
        return self.entry.uri

    # -- task_prerun ---------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        config: CaptureConfig,
        task: Any,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Run | None:
        """Open the capture of a run that is starting; ``None`` for an eager call."""
        request = task.request
        if getattr(request, "is_eager", False):
            return None  # eager runs happen in the caller's process, not in a worker
        attempt = int(getattr(request, "retries", 0) or 0) + 1
        started = datetime.now(timezone.utc)
        arguments = bind_arguments(task.run, args, kwargs)
        context = KeyContext(
            task_name=task.name,
            task_id=task_id,
            attempt=attempt,
            root_id=getattr(request, "root_id", None),
            started=started,
            arguments=arguments,
            task=task,
        )
        previous = _previous_entry(task, task_id, attempt, request)
        delivery = _delivery(previous, attempt, request)
        key = with_delivery(_key(config, context), delivery)
        capture = RunCapture(
            task_id=task_id,
            task_name=task.name,
            attempt=attempt,
            levelno=config.levelno,
            formatter=build_formatter(config.format, task_id=task_id, task_name=task.name),
            spool_dir=config.spool_dir,
            compress_level=config.compress_level,
            allows_logger=config.loggers.allows,
            max_bytes=config.max_bytes,
            redact=config.redactor.redact if config.redactor else None,
        )
        entry = RunEntry(
            status=Status.PENDING,
            uri=_planned_uri(config.storage, key),
            storage=config.storage,
            key=key,
            attempt=attempt,
            task_id=task_id,
            task_name=task.name,
            root_id=context.root_id,
            delivery=delivery,
            started=iso(started),
            earlier_keys=_earlier_keys(previous, attempt),
            redelivery_of=previous.key if previous is not None and delivery > 1 else None,
        )
        save_manifest(capture.path, entry)
        # Before routing starts, so the database's own log lines stay out of the run.
        record_started(entry, hostname=HOSTNAME, arguments=arguments, args=args, kwargs=kwargs)
        try:
            mark_pending(task, entry, defer=functools.partial(in_order, entry))
        except Exception:
            logger.exception("Could not record the pending log of %s[%s]", task.name, task_id)
        metrics.run_captured(task.name)
        return cls(config, capture, entry, task.backend)

    # -- while the task runs (the router's watcher thread) -------------------------------

    def tick(self, now: float) -> None:
        """Push compressed bytes to disk, and take a checkpoint when one is due."""
        self.capture.sync()
        if self._checkpoint_every and now >= self._next_checkpoint:
            self._next_checkpoint = now + self._checkpoint_every
            self.checkpoint()

    def checkpoint(self) -> None:
        """Store the log so far under its final key, replacing this run's previous checkpoint."""
        copy = checkpoint_copy_path(self.capture.path)
        with self._upload_lock:
            if self._finished:
                return
            try:
                if self.capture.snapshot(copy) is None:
                    return
                stored = store_log(
                    copy,
                    self.entry.key,
                    alias=self.config.storage,
                    attempts=1,
                    backoff=0,
                    replace=self._checkpoint_sha256 is not None,
                )
            except (OSError, UploadError) as error:
                logger.warning(
                    "Checkpoint of %s[%s] failed: %s", self.entry.task_name, self.task_id, error
                )
                return
            finally:
                copy.unlink(missing_ok=True)
            self._checkpoint_sha256 = stored.sha256
            self.entry = self.entry.replace(
                uri=stored.uri,
                checkpoint=iso(datetime.now(timezone.utc)),
                checkpoint_sha256=stored.sha256,
            )
            save_manifest(self.capture.path, self.entry)
        try:
            mark_checkpoint(self.backend, self.entry)
        except Exception:  # noqa: BLE001 - the checkpoint is stored; only its pointer is not
            logger.warning(
                "Could not record the checkpoint of %s[%s]", self.entry.task_name, self.task_id
            )

    # -- task_postrun ----------------------------------------------------------------------

    def finish(self, retval: Any, state: str | None) -> RunEntry:
        """Close the log with how the run ended, and deliver it."""
        capture = self.capture
        if (
            state == states.FAILURE
            and isinstance(retval, BaseException)
            and not capture.saw_exception
        ):
            capture.emit_exception(retval)
        # Celery leaves ``state`` unset when something other than an Exception (a
        # signal's SystemExit, a time limit) tore through the task: the run did not
        # reach its end, and its log says so.
        interrupted = state is None
        if interrupted:
            capture.write_note(INTERRUPTED_NOTE)
        with self._upload_lock:
            self._finished = True
            capture.finish()
            omitted_records, omitted_bytes = capture.omitted
            entry = self.entry.replace(
                finished=iso(datetime.now(timezone.utc)),
                counts=dict(capture.counts),
                task_state=state,
                complete=capture.write_error is None and not interrupted,
                incomplete_reason="run interrupted" if interrupted else None,
                omitted=(
                    {"records": omitted_records, "bytes": omitted_bytes}
                    if omitted_records
                    else None
                ),
                write_error=capture.write_error,
            )
            # Before the upload, so that if this process dies during it, recovery stores
            # the log as the finished run it is rather than adding a "worker lost" note.
            save_manifest(capture.path, entry)
            # The spool file stays locked until its files are removed (a stored log) or
            # its entry and row say it failed, which in a worker is after this returns.
            self.entry = deliver(
                capture.path,
                entry,
                destination=self.config.destination,
                backend=self.backend,
                replace=self._checkpoint_sha256 is not None,
                first_error=capture.first_error,
                release=capture.release,
            )
        return self.entry


def _key(config: CaptureConfig, context: KeyContext) -> str:
    compressed = config.compress_level > 0
    redact = config.redactor.redact if config.redactor else None
    try:
        return render_key(config.key, context, compressed=compressed, redact=redact)
    except KeyRenderError as error:
        key = render_key(FALLBACK_KEY, context, compressed=compressed, redact=redact)
        logger.warning(
            "Using the fallback key %s for %s[%s]: %s",
            key,
            context.task_name,
            context.task_id,
            error,
        )
        return key


def _planned_uri(alias: str, key: str) -> str:
    """Where ``key`` will be once stored; a storage that cannot say yields ``""``."""
    try:
        return storage_uri(storages[alias], alias, key)
    except Exception:  # noqa: BLE001 - a broken storage is reported at upload time
        return ""


# Brokers whose transport marks a message delivered again (``delivery_info["redelivered"]``):
# Redis when it restores an unacknowledged message, AMQP natively.
_FLAGGING_BROKERS = ("redis", "rediss", "sentinel", "amqp", "amqps", "pyamqp", "librabbitmq")


def _previous_entry(task: Any, task_id: str, attempt: int, request: Any) -> RunEntry | None:
    """The entry an earlier run of this task left, when there can be one.

    Read for a retry (its earlier attempts' keys), and for a message that came back
    after its worker was lost: the same id and attempt run again, and the entry the lost
    run left is how the new run is numbered. A first attempt on a broker that flags
    redeliveries, without the flag, cannot be one, and costs no read; on other brokers
    every run reads. The django-db backend keeps no entry for a running task; there a
    redelivery is known from the message alone.
    """
    backend = task.backend
    if attempt == 1 and (
        not isinstance(backend, BaseKeyValueStoreBackend)
        or (_broker_flags_redeliveries(task.app) and not _flagged_redelivered(request))
    ):
        return None
    try:
        return read_entry(backend, task_id)
    except Exception:  # noqa: BLE001 - the history is a convenience; the run goes on
        logger.warning("Could not read the earlier runs of %s[%s]", task.name, task_id)
        return None


def _flagged_redelivered(request: Any) -> bool:
    info = getattr(request, "delivery_info", None)
    return isinstance(info, Mapping) and bool(info.get("redelivered"))


@functools.lru_cache(maxsize=8)
def _broker_flags_redeliveries(app: Any) -> bool:
    try:
        url = str(app.conf.broker_url or "")
    except Exception:  # noqa: BLE001 - unknown broker: read, to be safe
        return False
    return url.split("://", 1)[0].rsplit("+", maxsplit=1)[-1] in _FLAGGING_BROKERS


def _delivery(previous: RunEntry | None, attempt: int, request: Any) -> int:
    """Which delivery of this attempt is starting: 1, or more when its message came back."""
    if previous is not None and previous.attempt == attempt:
        return previous.delivery + 1
    if _flagged_redelivered(request):
        return _recorded_deliveries(str(request.id), attempt) + 1
    return 1


def _recorded_deliveries(task_id: str, attempt: int) -> int:
    """How many deliveries of this attempt have a row (0 when rows are off or unreadable)."""
    try:
        from celery_parselog.models import TaskLog

        return int(TaskLog.objects.filter(task_id=task_id, attempt=attempt).count())
    except Exception:  # noqa: BLE001 - without rows, the message's own flag is all there is
        return 0


def _earlier_keys(previous: RunEntry | None, attempt: int) -> tuple[str, ...] | None:
    """The keys of this task's earlier attempts, from the entry the previous attempt left."""
    if attempt == 1:
        return None
    if previous is None or previous.attempt >= attempt:
        return ()
    return (*(previous.earlier_keys or ()), previous.key)
