"""The ``parselog`` entry on a task's result metadata, and :func:`log_info` to read it.

Celery stores a task's result *before* ``task_postrun`` fires, and key-value
backends ignore any later ``store_result`` once a task succeeded. So the entry is
written in two steps and read with care:

* at ``task_prerun`` a *pending* entry with the planned key is recorded: in
  ``task.request.meta`` for django-celery-results' ``django-db`` backend (stored
  with the result), and under a key of its own for key-value backends such as Redis;
* after the upload, the final entry is merged into the stored result metadata
  (and into that key of its own), with the backend's own encode/get/set;
* :func:`log_info` reads without the result cache and can wait for the final entry,
  and it reports ``status="pending"`` rather than a URI of an object not yet stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery.backends.base import Backend, BaseKeyValueStoreBackend
from celery.result import AsyncResult

__all__ = ["ENTRY", "LogInfo", "ResultMetadata", "log_info"]

logger = logging.getLogger("celery_parselog.metadata")

ENTRY = "parselog"
PENDING = "pending"
STORED = "stored"
FAILED = "failed"
_OWN_KEY_PREFIX = "celery-parselog-meta-"


@dataclass(frozen=True)
class LogInfo:
    """Where one run's log is, and whether it is there yet.

    ``status`` is ``"stored"`` once the storage confirmed the object, ``"pending"``
    while the run or its upload is still going on, and ``"failed"`` when the upload
    gave up (the log then waits in the worker's spool folder). Only a ``"stored"``
    log is guaranteed to exist at ``uri``.
    """

    status: str
    uri: str
    storage: str
    key: str
    attempt: int
    task_id: str
    bytes: int | None = None
    sha256: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    error: str | None = None

    @property
    def stored(self) -> bool:
        return self.status == STORED

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> LogInfo:
        return cls(
            status=str(entry.get("status", PENDING)),
            uri=str(entry.get("uri", "")),
            storage=str(entry.get("storage", "")),
            key=str(entry.get("key", "")),
            attempt=int(entry.get("attempt", 1)),
            task_id=str(entry.get("task_id", "")),
            bytes=entry.get("bytes"),
            sha256=entry.get("sha256"),
            counts=dict(entry.get("counts") or {}),
            started=entry.get("started"),
            finished=entry.get("finished"),
            error=entry.get("error"),
        )


def _is_django_db(backend: Backend) -> bool:
    return any(
        cls.__module__ == "django_celery_results.backends.database" for cls in type(backend).__mro__
    )


class ResultMetadata:
    """Writes and reads the ``parselog`` entry through whichever result backend a task uses."""

    def mark_pending(self, task: Any, entry: Mapping[str, Any]) -> None:
        """Record the planned log before the task's result is stored."""
        backend = task.backend
        if _is_django_db(backend):
            request = task.request
            meta = dict(getattr(request, "meta", None) or {})
            meta[ENTRY] = dict(entry)
            request.meta = meta
        elif isinstance(backend, BaseKeyValueStoreBackend):
            backend.set(_OWN_KEY_PREFIX + entry["task_id"], backend.encode(dict(entry)))

    def mark_checkpoint(self, backend: Backend, entry: Mapping[str, Any]) -> None:
        """Say a partial log is stored, while the run goes on (key-value backends only:
        the django-db backend has no row for a running task)."""
        if isinstance(backend, BaseKeyValueStoreBackend):
            backend.set(_OWN_KEY_PREFIX + entry["task_id"], backend.encode(dict(entry)))

    def publish(self, backend: Backend, entry: Mapping[str, Any]) -> None:
        """Merge the final entry into the stored result metadata."""
        task_id = entry["task_id"]
        if _is_django_db(backend):
            self._publish_django_db(backend, task_id, entry)
        elif isinstance(backend, BaseKeyValueStoreBackend):
            # Into the stored result when there is one (readers look there first);
            # otherwise (a task that ignores its result) under the key of its own.
            key = backend.get_key_for_task(task_id)
            raw = backend.get(key)
            if raw:
                meta = backend.decode(raw)
                meta[ENTRY] = dict(entry)
                backend.set(key, backend.encode(meta))
            else:
                backend.set(_OWN_KEY_PREFIX + task_id, backend.encode(dict(entry)))

    @staticmethod
    def _publish_django_db(backend: Any, task_id: str, entry: Mapping[str, Any]) -> None:
        model = backend.TaskModel
        row = model._default_manager.filter(task_id=task_id).first()
        if row is None:  # a task that ignores its result has no row to carry the entry
            return
        meta = backend.decode_content(row, row.meta) or {}
        meta[ENTRY] = dict(entry)
        _, _, row.meta = backend.encode_content(meta)
        row.save(update_fields=["meta"])

    @staticmethod
    def read(backend: Backend, task_id: str) -> dict[str, Any] | None:
        meta = backend.get_task_meta(task_id, cache=False)
        entry = meta.get(ENTRY) if isinstance(meta, Mapping) else None
        if entry is None and isinstance(backend, BaseKeyValueStoreBackend):
            raw = backend.get(_OWN_KEY_PREFIX + task_id)
            entry = backend.decode(raw) if raw else None
        return dict(entry) if isinstance(entry, Mapping) else None


def log_info(result: AsyncResult[Any], wait: float = 0.0, *, poll: float = 0.05) -> LogInfo | None:
    """The log of a task run, read through its result backend.

    Returns ``None`` when the task has no log (it was not captured, ran in eager
    mode, or has not started yet). With ``wait`` seconds, keeps reading while the
    log is still pending, which covers the moment between the result being stored
    and the log being uploaded; check :attr:`LogInfo.status` on what comes back.
    """
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        entry = ResultMetadata.read(result.backend, result.id)
        remaining = deadline - time.monotonic()
        if (entry is not None and entry.get("status") != PENDING) or remaining <= 0:
            return LogInfo.from_entry(entry) if entry is not None else None
        time.sleep(min(poll, remaining))
