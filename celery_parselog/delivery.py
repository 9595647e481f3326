"""Delivering a finished spool file: store it, publish its entry, record its row, tidy up.

The one path every log takes to storage, whether its run just ended (``task_postrun``)
or recovery found it left behind. The steps keep their order because readers rely on
it: the result's entry is published before the row is saved and ``log_uploaded`` is
sent, so a receiver of the signal can already read :func:`~celery_parselog.log_info`;
the spool file goes only once the storage confirmed the object. Nothing here raises
except what the caller must know: every step after the upload is best effort.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from celery.backends.base import Backend

from celery_parselog import metrics
from celery_parselog.entry import RunEntry, Status
from celery_parselog.metadata import publish
from celery_parselog.records import record_finished, record_recovered
from celery_parselog.spool import remove_run_files, write_manifest
from celery_parselog.storage import UploadError, store_log

__all__ = ["HOSTNAME", "Destination", "deliver", "save_manifest"]

logger = logging.getLogger("celery_parselog")

HOSTNAME = socket.gethostname()


@dataclass(frozen=True)
class Destination:
    """Where logs go and how hard to try: the storage alias from the settings, never from
    a manifest."""

    storage: str
    attempts: int
    backoff: float


def save_manifest(spool: Path, entry: RunEntry, *, hostname: str = HOSTNAME) -> None:
    """Keep a spool file's manifest current; without one, recovery still finds the log by name."""
    try:
        write_manifest(spool, entry.to_manifest(hostname=hostname, pid=os.getpid()))
    except OSError as error:
        logger.warning("Could not write the manifest of %s: %s", spool, error)


def deliver(
    spool: Path,
    entry: RunEntry,
    *,
    destination: Destination,
    backend: Backend | None,
    upload: Path | None = None,
    replace: bool = False,
    first_error: str | None = None,
    recovered: bool = False,
    hostname: str = HOSTNAME,
    release: Callable[[], None] | None = None,
) -> RunEntry:
    """Store ``upload`` (the spool file itself unless given) under ``entry.key``, then publish,
    record and clean up. Returns the final entry: ``stored``, or ``failed`` with the
    error, in which case the spool file and its manifest stay for the next sweep.

    ``release`` lets go of the spool file's lock; it is called last, once nothing more
    is done with the files. In a worker, a run that ended (not a recovered one) has its
    entry published, its row written and its files removed by the background writer
    (:class:`~celery_parselog.records.RowWriter`), in that order, after this returns:
    the task waits only for the upload.
    """
    try:
        final = _store(spool, entry, destination, upload=upload, replace=replace, hostname=hostname)
    except BaseException:
        if release is not None:
            release()
        raise
    if recovered:
        try:
            if not final.stored:
                # The entry and the row still say what they said; the next sweep retries.
                return final
            metrics.run_recovered(final.task_name, final.bytes or 0)
            _publish(backend, final)
            record_recovered(final, hostname=hostname)
            remove_run_files(spool)
        finally:
            if release is not None:
                release()
        return final

    def tidy() -> None:
        try:
            if final.stored:
                # A run that ended removed its own tail segments and checkpoint copies.
                remove_run_files(spool, only_log_and_manifest=True)
        except OSError as error:
            logger.warning("Could not remove the spool files of %s: %s", spool, error)
        finally:
            if release is not None:
                release()

    # The entry is published before the row is saved, so receivers of log_uploaded can
    # already read log_info(); the files go once the row is written.
    record_finished(
        final, first_error=first_error, before=lambda: _publish(backend, final), after=tidy
    )
    return final


def _store(
    spool: Path,
    entry: RunEntry,
    destination: Destination,
    *,
    upload: Path | None,
    replace: bool,
    hostname: str,
) -> RunEntry:
    """Upload the log; the entry as it then stands, ``stored`` or ``failed``."""
    began = time.monotonic()
    try:
        stored = store_log(
            upload or spool,
            entry.key,
            alias=destination.storage,
            attempts=destination.attempts,
            backoff=destination.backoff,
            replace=replace,
        )
    except UploadError as error:
        final = entry.replace(status=Status.FAILED, error=str(error), spool=str(spool))
        save_manifest(spool, final, hostname=hostname)
        metrics.upload_failed(final.task_name, time.monotonic() - began)
        logger.error(
            "The log of %s[%s] could not be stored and stays at %s: %s",
            entry.task_name or "task",
            entry.task_id,
            spool,
            error,
        )
        return final
    metrics.run_stored(entry.task_name, stored.bytes, time.monotonic() - began)
    return entry.replace(
        status=Status.STORED,
        key=stored.key,
        uri=stored.uri,
        bytes=stored.bytes,
        sha256=stored.sha256,
        error=None,
        spool=None,
    )


def _publish(backend: Backend | None, final: RunEntry) -> None:
    """Merge the final entry into the task's result; a failure is logged, never raised."""
    if backend is None:
        return
    try:
        publish(backend, final)
    except Exception:
        logger.warning(
            "Could not record the log %s of %s[%s] on its result",
            final.key,
            final.task_name or "task",
            final.task_id,
            exc_info=True,
        )
