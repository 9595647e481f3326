"""The ``parselog`` entry on a task's result metadata, and :func:`log_info` to read it.

Celery stores a task's result *before* ``task_postrun`` fires, and key-value
backends ignore any later ``store_result`` once a task succeeded. So the entry is
written in two steps and read with care:

* at ``task_prerun`` a *pending* entry with the planned key is recorded: in
  ``task.request.meta`` for django-celery-results' ``django-db`` backend (stored
  with the result), and under a key of its own for key-value backends such as Redis;
* after the upload, the final entry is merged into the stored result metadata with
  the backend's own encode/get/set, and the key of its own is removed, so no key
  anywhere still says ``pending`` (a task that ignores its result keeps it there);
* publishing never lets an earlier run replace a later one: whatever order uploads
  finish in, the entry converges on the latest attempt (and delivery) of the task;
* :func:`log_info` reads without the result cache and can wait for the final entry,
  and it reports ``status="pending"`` rather than a URI of an object not yet stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from celery import current_app
from celery.backends.base import Backend, BaseKeyValueStoreBackend
from celery.result import AsyncResult

from celery_parselog.entry import RunEntry, Status

__all__ = [
    "ENTRY",
    "LogInfo",
    "log_info",
    "mark_checkpoint",
    "mark_pending",
    "publish",
    "read_entry",
    "settle_entry",
]

logger = logging.getLogger("celery_parselog.metadata")

ENTRY = "parselog"
_OWN_KEY_PREFIX = "celery-parselog-meta-"

LogInfo = RunEntry
"""What :func:`log_info` returns: a run's entry, every documented field included."""


def _is_django_db(backend: Backend) -> bool:
    return any(
        cls.__module__ == "django_celery_results.backends.database" for cls in type(backend).__mro__
    )


def _own_key(task_id: str) -> str:
    return _OWN_KEY_PREFIX + task_id


def mark_pending(
    task: Any, entry: RunEntry, *, defer: Callable[[Callable[[], None]], None] | None = None
) -> None:
    """Record the planned log before the task's result is stored.

    On django-db that is the request's ``meta``, set at once. On key-value backends it is
    a write to the key of its own, which ``defer`` (when given) is handed to run later:
    a worker runs it in its background writer, so the task does not wait for the round
    trip.
    """
    backend = task.backend
    if _is_django_db(backend):
        request = task.request
        meta = dict(getattr(request, "meta", None) or {})
        meta[ENTRY] = entry.to_wire()
        request.meta = meta
    elif isinstance(backend, BaseKeyValueStoreBackend):

        def write() -> None:
            # Without re-publishing (see _write): nobody subscribes to the key of its own.
            _write(backend, {_own_key(entry.task_id): backend.encode(entry.to_wire())}, [])

        if defer is None:
            write()
        else:
            defer(write)


def mark_checkpoint(backend: Backend, entry: RunEntry) -> None:
    """Say a partial log is stored, while the run goes on (key-value backends only:
    the django-db backend has no row for a running task)."""
    if isinstance(backend, BaseKeyValueStoreBackend):
        _write(backend, {_own_key(entry.task_id): backend.encode(entry.to_wire())}, [])


def _later(current: Mapping[str, Any] | None, entry: RunEntry) -> bool:
    """Whether ``entry`` may replace ``current``: it is of the same run or of a later one."""
    if not isinstance(current, Mapping):
        return True
    return entry.order >= RunEntry.from_wire(current).order


def publish(backend: Backend, entry: RunEntry) -> None:
    """Merge the final entry into the stored result metadata, unless a later run's is there."""
    if _is_django_db(backend):
        _publish_django_db(backend, entry)
    elif isinstance(backend, BaseKeyValueStoreBackend):
        _publish_key_value(backend, entry)


def _publish_key_value(backend: BaseKeyValueStoreBackend, entry: RunEntry) -> None:
    task_id = entry.task_id
    key = backend.get_key_for_task(task_id)
    own_key = _own_key(task_id)
    raw, own = _get_both(backend, key, own_key)
    own_entry = backend.decode(own) if own else None
    writes: dict[Any, Any] = {}
    deletes = []
    if raw:
        meta = backend.decode(raw)
        current = meta.get(ENTRY) if isinstance(meta, Mapping) else None
        # The key of its own may hold a later run that has only started (a retry).
        if _later(current, entry) and _later(own_entry, entry):
            meta[ENTRY] = entry.to_wire()
            writes[key] = backend.encode(meta)
        if own and _later(own_entry, entry):
            deletes.append(own_key)
    elif _later(own_entry, entry):
        # A task that ignores its result: the key of its own is the entry's only home.
        writes[own_key] = backend.encode(entry.to_wire())
    _write(backend, writes, deletes)


def _get_both(backend: BaseKeyValueStoreBackend, first: Any, second: Any) -> tuple[Any, Any]:
    """Two keys in one request. Backends answer ``mget`` with a list (Redis) or a mapping
    of the keys found (memcached and the other caches)."""
    values = backend.mget([first, second])
    if isinstance(values, Mapping):
        return _lookup(values, first), _lookup(values, second)
    found = list(values)
    return found[0], found[1]


def _lookup(values: Mapping[Any, Any], key: Any) -> Any:
    if key in values:
        return values[key]
    other = key.decode() if isinstance(key, bytes) else key.encode()
    return values.get(other)


def _write(
    backend: BaseKeyValueStoreBackend, writes: Mapping[Any, Any], deletes: list[str]
) -> None:
    """Set and delete keys; on Redis in one round trip, and without re-publishing the result.

    ``RedisBackend.set`` also PUBLISHes the value on the key's channel, which would send
    the whole result again to every client waiting on it; the entry is read by polling
    (:func:`log_info`), so the extra message is pure cost.
    """
    client = getattr(backend, "client", None)
    if type(backend).__module__ == "celery.backends.redis" and client is not None:
        expires = getattr(backend, "expires", None)
        if len(writes) == 1 and not deletes:
            ((name, value),) = writes.items()
            if expires:
                client.setex(name, expires, value)
            else:
                client.set(name, value)
            return
        with client.pipeline() as pipe:
            for name, value in writes.items():
                if expires:
                    pipe.setex(name, expires, value)
                else:
                    pipe.set(name, value)
            for name in deletes:
                pipe.delete(name)
            pipe.execute()
        return
    for name, value in writes.items():
        backend.set(name, value)
    for name in deletes:
        backend.delete(name)


def settle_entry(backend: Backend, task_id: str) -> None:
    """Move an entry kept under its own key into the task's result, now that there is one.

    Recovery may store a killed child's log a moment before the worker records the task's
    failure; its entry then waits under the key of its own. Called when the failure is
    recorded, so the entry ends up in one place, the result, like every other.
    """
    if not isinstance(backend, BaseKeyValueStoreBackend):
        return
    raw = backend.get(_own_key(task_id))
    own = backend.decode(raw) if raw else None
    if isinstance(own, Mapping) and own.get("status") != Status.PENDING.value:
        _publish_key_value(backend, RunEntry.from_wire(own))


def _publish_django_db(backend: Any, entry: RunEntry) -> None:
    model = backend.TaskModel
    row = model._default_manager.filter(task_id=entry.task_id).first()
    if row is None:  # a task that ignores its result has no row to carry the entry
        return
    meta = backend.decode_content(row, row.meta) or {}
    if not _later(meta.get(ENTRY), entry):
        return
    meta[ENTRY] = entry.to_wire()
    _, _, row.meta = backend.encode_content(meta)
    row.save(update_fields=["meta"])


def read_entry(backend: Backend, task_id: str) -> RunEntry | None:
    """The latest entry of a task, wherever it is kept; ``None`` when it has none.

    On key-value backends the result and the key of its own are read in one request.
    """
    if isinstance(backend, BaseKeyValueStoreBackend):
        raw, own = _get_both(backend, backend.get_key_for_task(task_id), _own_key(task_id))
        meta = backend.decode(raw) if raw else None
        kept = backend.decode(own) if own else None
        entries = [
            RunEntry.from_wire(data)
            for data in (meta.get(ENTRY) if isinstance(meta, Mapping) else None, kept)
            if isinstance(data, Mapping)
        ]
        # The result's entry comes first, so it wins a tie with the key of its own.
        return max(entries, key=lambda entry: entry.order, default=None)
    meta = backend.get_task_meta(task_id, cache=False)
    found_entry = meta.get(ENTRY) if isinstance(meta, Mapping) else None
    return RunEntry.from_wire(found_entry) if isinstance(found_entry, Mapping) else None


def log_info(
    result: AsyncResult[Any] | str,
    wait: float = 0.0,
    *,
    app: Any = None,
    poll: float = 0.05,
) -> LogInfo | None:
    """The log of a task run, read through its result backend.

    ``result`` is an ``AsyncResult`` or a task id (read through ``app``, or the current
    Celery app). Returns ``None`` when the task has no log (it was not captured, ran in
    eager mode, or has not started yet). With ``wait`` seconds, keeps reading while the
    log is still pending, which covers the moment between the result being stored and
    the log being uploaded; check :attr:`LogInfo.status` on what comes back.
    """
    if isinstance(result, str):
        result = AsyncResult(result, app=app or current_app)
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        entry = read_entry(result.backend, result.id)
        remaining = deadline - time.monotonic()
        if (entry is not None and entry.status is not Status.PENDING) or remaining <= 0:
            return entry
        time.sleep(min(poll, remaining))
