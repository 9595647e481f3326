"""Receivers that open a run's capture at ``task_prerun`` and store it at ``task_postrun``.

They are connected only in worker processes where capture is on (see
:mod:`celery_parselog.worker`), so web processes, shells, beat and clients pay
nothing. Every receiver returns at once for tasks that are not selected, and
catches its own failures: capture never raises into a task, nor changes its
state or result.
"""

from __future__ import annotations

import logging
import os
import socket
from contextvars import Token
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from celery import states
from celery.signals import task_postrun, task_prerun
from django.core.files.storage import storages

from celery_parselog.capture import RunCapture
from celery_parselog.conf import ParselogSettings
from celery_parselog.formatting import build_formatter
from celery_parselog.keys import KeyContext, KeyRenderError, bind_arguments, render_key
from celery_parselog.metadata import FAILED, PENDING, STORED, ResultMetadata
from celery_parselog.records import record_finished, record_started
from celery_parselog.recovery import INTERRUPTED_TRAILER
from celery_parselog.redaction import Redactor, cached_redactor
from celery_parselog.routing import CaptureRouter, Checkpoint, LoggerSelection, current_run
from celery_parselog.selection import TaskSelector
from celery_parselog.spool import write_manifest
from celery_parselog.storage import UploadError, storage_uri, store_log

__all__ = ["CaptureConfig", "CaptureReceivers"]

logger = logging.getLogger("celery_parselog")

_FALLBACK_KEY = "parselog/{task_name}/{task_id}-{attempt}.log"
_HOSTNAME = socket.gethostname()


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
    def from_settings(cls, source: ParselogSettings | None = None) -> CaptureConfig:
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


@dataclass
class _ActiveRun:
    capture: RunCapture
    token: Token[RunCapture | None]
    entry: dict[str, Any]
    backend: Any
    checkpointed: bool = False


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class CaptureReceivers:
    """The ``task_prerun``/``task_postrun`` receivers of one worker process, and what they share.

    An instance is kept alive by :mod:`celery_parselog.worker` and connected with
    strong references, because Celery holds receivers weakly by default.
    """

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        checkpoint = (
            Checkpoint(config.checkpoint_seconds, self._upload_checkpoint)
            if config.checkpoint_seconds
            else None
        )
        self.router = CaptureRouter(config.loggers, checkpoint)
        self.results = ResultMetadata()
        self._runs: dict[int, _ActiveRun] = {}
        self._warned_about_levels = False

    def connect(self) -> None:
        task_prerun.connect(self.on_task_prerun, weak=False, dispatch_uid="celery_parselog.prerun")
        task_postrun.connect(
            self.on_task_postrun, weak=False, dispatch_uid="celery_parselog.postrun"
        )

    def disconnect(self) -> None:
        task_prerun.disconnect(dispatch_uid="celery_parselog.prerun")
        task_postrun.disconnect(dispatch_uid="celery_parselog.postrun")
        self.router.close()

    # -- task_prerun -------------------------------------------------------------

    def on_task_prerun(
        self,
        sender: Any = None,
        task_id: str | None = None,
        task: Any = None,
        args: Any = None,
        kwargs: Any = None,
        **_: Any,
    ) -> None:
        if task is None or not self.config.selector.matches(task.name):
            return
        try:
            self._start(str(task_id), task, tuple(args or ()), dict(kwargs or {}))
        except Exception:
            logger.exception("Could not start capturing %s[%s]", task.name, task_id)

    def _start(
        self, task_id: str, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        request = task.request
        if getattr(request, "is_eager", False):
            return  # eager runs happen in the caller's process, not in a worker
        config = self.config
        attempt = int(getattr(request, "retries", 0) or 0) + 1
        started = datetime.now(timezone.utc)
        context = KeyContext(
            task_name=task.name,
            task_id=task_id,
            attempt=attempt,
            root_id=getattr(request, "root_id", None),
            started=started,
            arguments=bind_arguments(task.run, args, kwargs),
            task=task,
        )
        compressed = config.compress_level > 0
        try:
            key = render_key(config.key, context, compressed=compressed)
        except KeyRenderError as error:
            key = render_key(_FALLBACK_KEY, context, compressed=compressed)
            logger.warning(
                "Using the fallback key %s for %s[%s]: %s", key, task.name, task_id, error
            )
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
        self._warn_if_levels_hide_records()
        entry = self._pending_entry(context, key)
        if attempt > 1:
            entry["earlier_keys"] = self._earlier_keys(task, task_id, attempt)
        self._write_manifest(capture, entry)
        # Before entering the router, so the database's own log lines stay out of the run.
        record_started(
            entry,
            task_name=task.name,
            hostname=_HOSTNAME,
            arguments=context.arguments,
            args=args,
            kwargs=kwargs,
        )
        try:
            self.results.mark_pending(task, entry)
        except Exception:
            logger.exception("Could not record the pending log of %s[%s]", task.name, task_id)
        token = self.router.enter(capture)
        self._runs[id(capture)] = _ActiveRun(capture, token, entry, task.backend)

    def _earlier_keys(self, task: Any, task_id: str, attempt: int) -> list[str]:
        """The keys of this task's earlier attempts, from the entry the previous attempt left."""
        try:
            previous = self.results.read(task.backend, task_id)
        except Exception:  # noqa: BLE001 - the list is a convenience; the run goes on
            logger.warning("Could not read the earlier attempts of %s[%s]", task.name, task_id)
            return []
        if not previous or int(previous.get("attempt", attempt)) >= attempt:
            return []
        return [*previous.get("earlier_keys", []), previous.get("key", "")]

    def _warn_if_levels_hide_records(self) -> None:
        root_level = logging.getLogger().getEffectiveLevel()
        if not self._warned_about_levels and root_level > self.config.levelno:
            self._warned_about_levels = True
            logger.warning(
                "The root logger's level is %s, above CELERY_PARSELOG_LEVEL (%s): records "
                "below it are never created, so they cannot be captured. Start the worker "
                "with --loglevel=%s to capture them.",
                logging.getLevelName(root_level),
                logging.getLevelName(self.config.levelno),
                logging.getLevelName(self.config.levelno),
            )

    def _pending_entry(self, context: KeyContext, key: str) -> dict[str, Any]:
        """The entry of a run that has just started: where its log is planned to go."""
        return {
            "status": PENDING,
            "uri": self._planned_uri(key),
            "storage": self.config.storage,
            "key": key,
            "attempt": context.attempt,
            "task_id": context.task_id,
            "task_name": context.task_name,
            "started": _iso(context.started),
        }

    # -- task_postrun ------------------------------------------------------------

    def on_task_postrun(
        self,
        sender: Any = None,
        task_id: str | None = None,
        task: Any = None,
        retval: Any = None,
        state: str | None = None,
        **_: Any,
    ) -> None:
        capture = current_run()
        if capture is None or capture.task_id != str(task_id):
            return
        active = self._runs.pop(id(capture), None)
        if active is None:
            return
        try:
            self._finish(active, task, retval, state)
        except Exception:
            logger.exception("Could not finish capturing %s[%s]", capture.task_name, task_id)

    def _finish(self, active: _ActiveRun, task: Any, retval: Any, state: str | None) -> None:
        capture = active.capture
        self.router.leave(active.token)
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
            capture.write_marker(INTERRUPTED_TRAILER)
        capture.finish()
        entry = {
            **active.entry,
            "status": STORED,
            "finished": _iso(datetime.now(timezone.utc)),
            "counts": dict(capture.counts),
            "task_state": state,
            "complete": capture.write_error is None and not interrupted,
        }
        if interrupted:
            entry["incomplete_reason"] = "run interrupted"
        omitted_records, omitted_bytes = capture.omitted
        if omitted_records:
            entry["omitted"] = {"records": omitted_records, "bytes": omitted_bytes}
        if capture.write_error is not None:
            entry["write_error"] = capture.write_error
        # Before the upload, so that if this process dies during it, recovery stores the
        # log as the finished run it is rather than adding a "worker lost" trailer.
        self._write_manifest(capture, entry)
        try:
            stored = store_log(
                capture.path,
                active.entry["key"],
                alias=self.config.storage,
                attempts=self.config.upload_attempts,
                backoff=self.config.upload_backoff,
                replace=active.checkpointed,
            )
        except UploadError as error:
            entry.update(status=FAILED, error=str(error), spool=str(capture.path))
            self._write_manifest(capture, entry)
            capture.release()  # the log stays in the spool folder for recovery
            logger.error(
                "The log of %s[%s] could not be stored and stays at %s: %s",
                capture.task_name,
                capture.task_id,
                capture.path,
                error,
            )
        else:
            entry.update(key=stored.key, uri=stored.uri, bytes=stored.bytes, sha256=stored.sha256)
            capture.discard()
        try:
            self.results.publish(task.backend, entry)
        except Exception:
            logger.exception(
                "Could not record the log of %s[%s] on its result",
                capture.task_name,
                capture.task_id,
            )
        # After publishing, so receivers of log_uploaded can already read log_info().
        record_finished(entry, first_error=capture.first_error)

    def _upload_checkpoint(self, capture: RunCapture) -> None:
        """Store the log so far under its final key; called by the router's watcher thread."""
        active = self._runs.get(id(capture))
        if active is None:
            return
        copy = capture.path.with_name(f".checkpoint-{capture.path.name}")
        try:
            if capture.snapshot(copy) is None:
                return
            stored = store_log(
                copy,
                active.entry["key"],
                alias=self.config.storage,
                attempts=1,
                backoff=0,
                replace=active.checkpointed,
            )
        except (OSError, UploadError) as error:
            logger.warning(
                "Checkpoint of %s[%s] failed: %s", capture.task_name, capture.task_id, error
            )
            return
        finally:
            copy.unlink(missing_ok=True)
        active.checkpointed = True
        checkpoint = {
            **active.entry,
            "uri": stored.uri,
            "checkpoint": _iso(datetime.now(timezone.utc)),
        }
        try:
            self.results.mark_checkpoint(active.backend, checkpoint)
        except Exception:  # noqa: BLE001 - the checkpoint is stored; only its pointer is not
            logger.warning(
                "Could not record the checkpoint of %s[%s]", capture.task_name, capture.task_id
            )

    @staticmethod
    def _write_manifest(capture: RunCapture, entry: dict[str, Any]) -> None:
        """Keep the sidecar manifest current; without one, recovery still finds the log by name."""
        try:
            write_manifest(capture.path, {**entry, "hostname": _HOSTNAME, "pid": os.getpid()})
        except OSError as error:
            logger.warning("Could not write the manifest of %s: %s", capture.path, error)

    def _planned_uri(self, key: str) -> str:
        """Where ``key`` will be once stored; a storage that cannot say yields ``""``."""
        alias = self.config.storage
        try:
            return storage_uri(storages[alias], alias, key)
        except Exception:  # noqa: BLE001 - a broken storage is reported at upload time
            return ""
