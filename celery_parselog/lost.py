"""Marking runs ``lost`` whose worker is gone, from another host.

A run's row whose lease expired (see :mod:`celery_parselog.lease`) belongs to a worker
that died with its spool folder, or that has not reached the database for a whole
lease. Its log will not come from that host, so the entry and the row are made to
point at what storage holds of it: the run's last checkpoint, stored under the run's
own key, or nothing. Either way the entry says ``complete: false`` and ``worker lost``.

Should the worker's disk survive after all (a restarted container keeping its
volume), that worker's recovery later stores the whole log under the same key,
replacing the checkpoint, and the entry and the row follow it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.files.storage import storages

from celery_parselog import metrics
from celery_parselog.entry import RunEntry, Status, iso
from celery_parselog.lease import Lease
from celery_parselog.metadata import publish, read_entry
from celery_parselog.records import (
    announce,
    expired_runs,
    record_finished,
    record_lost,
    record_recovered,
)
from celery_parselog.storage import storage_uri

if TYPE_CHECKING:
    from celery_parselog.models import TaskLog

__all__ = ["LOST_REASON", "LostReport", "find_lost"]

logger = logging.getLogger("celery_parselog")

LOST_REASON = "worker lost"
NO_CHECKPOINT = "the worker was lost before any checkpoint of the log was stored"


@dataclass
class LostReport:
    """What one look for lost runs did: the rows it marked, with or without a checkpoint,
    and those it found already finished (their final write had failed)."""

    with_checkpoint: list[str] = field(default_factory=list)
    without_checkpoint: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)

    @property
    def marked(self) -> int:
        return len(self.with_checkpoint) + len(self.without_checkpoint)


def find_lost(
    *,
    backend: Any,
    storage: str,
    lease: Lease | None = None,
    seconds: float | None = None,
    besides: str = "",
) -> LostReport:
    """Mark every running row whose lease expired ``lost``.

    ``seconds`` overrides the lease's length (the command's ``--older-than``);
    ``besides`` is the caller's own worker, whose rows are alive by definition.
    ``storage`` is used for rows that name a storage alias that is not configured.
    """
    length = seconds if seconds is not None else (lease or Lease.current()).seconds
    report = LostReport()
    for row in expired_runs(length, besides=besides):
        try:
            _mark(row, length, backend, storage, report)
        except Exception:  # one bad row must not stop the others
            logger.exception("Could not mark %s lost", row)
    return report


def _mark(row: TaskLog, seconds: float, backend: Any, fallback: str, report: LostReport) -> None:
    known = _known_entry(backend, row)
    if known is not None and known.status is not Status.PENDING:
        # The run ended and its entry was published, but the row's last write failed.
        if known.recovered:
            record_recovered(known, hostname=row.hostname)
        else:
            record_finished(known, first_error=None)
        report.settled.append(row.key)
        return
    entry = _lost_entry(known or _row_entry(row), row, fallback)
    marked = record_lost(row, entry, seconds=seconds)
    if marked is None:
        return  # another sweeper marked it, or the run came back to life
    metrics.run_lost(row.task_name)
    if backend is not None:
        try:
            publish(backend, entry)
        except Exception:  # the row says it; the result's entry stays pending
            logger.warning("Could not record the lost run %s on its result", row, exc_info=True)
    logger.warning(
        "The worker %s of %s is gone; the run is marked lost%s",
        row.worker or row.hostname,
        row,
        f" at its last checkpoint {entry.uri or entry.key}" if entry.stored else "",
    )
    if entry.stored:
        announce(marked)
        report.with_checkpoint.append(entry.key)
    else:
        report.without_checkpoint.append(entry.key)


def _known_entry(backend: Any, row: TaskLog) -> RunEntry | None:
    """The entry this very run (attempt and delivery) published, if the backend has it."""
    if backend is None:
        return None
    try:
        entry = read_entry(backend, row.task_id)
    except Exception:  # the row alone is enough to mark the run
        logger.warning("Could not read the entry of %s", row, exc_info=True)
        return None
    if entry is None or entry.order != (row.attempt, row.delivery):
        return None
    return entry


def _row_entry(row: TaskLog) -> RunEntry:
    """The pending entry of a run, as its row describes it."""
    return RunEntry(
        status=Status.PENDING,
        uri=row.uri,
        storage=row.storage,
        key=row.key,
        attempt=row.attempt,
        task_id=row.task_id,
        task_name=row.task_name,
        delivery=row.delivery,
        started=iso(row.started) if row.started else None,
        redelivery_of=row.redelivery_of or None,
    )


def _lost_entry(entry: RunEntry, row: TaskLog, fallback: str) -> RunEntry:
    """``entry`` made final: pointing at the run's last checkpoint if storage holds one."""
    alias = entry.storage or row.storage
    if alias not in storages.backends:
        alias = fallback
    key = entry.key or row.key
    size = _checkpoint_size(alias, key) if key else None
    lost = entry.replace(
        storage=alias, key=key, complete=False, incomplete_reason=LOST_REASON, spool=None
    )
    if size is None:
        return lost.replace(status=Status.FAILED, error=NO_CHECKPOINT, bytes=None, sha256=None)
    return lost.replace(
        status=Status.STORED,
        uri=_uri(alias, key) or entry.uri,
        bytes=size,
        sha256=entry.checkpoint_sha256,
        error=None,
    )


def _checkpoint_size(alias: str, key: str) -> int | None:
    """The size of the object under the run's own key, or ``None`` when there is none.

    Only the run itself stores under its key (task id, attempt and delivery are in it),
    so an object there is its last checkpoint. A storage that cannot be asked raises,
    and the row stays ``running`` for the next look rather than be marked without its
    checkpoint.
    """
    storage = storages[alias]
    if not storage.exists(key):
        return None
    return int(storage.size(key))


def _uri(alias: str, key: str) -> str:
    try:
        return storage_uri(storages[alias], alias, key)
    except Exception:  # noqa: BLE001 - the key still names the object
        return ""
