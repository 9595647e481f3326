"""The one schema of a run: :class:`RunEntry`, and the :class:`Status` of its log.

A run's entry is what every reader of a run sees, in one shape: the ``parselog``
entry on the task's result metadata (its wire form, :meth:`RunEntry.to_wire`), the
spool file's manifest (the wire form plus a few local fields), the ``TaskLog`` row's
fields, and :class:`~celery_parselog.metadata.LogInfo`, which *is* this class. Adding a
field is a change here only.

Entries are frozen: each step of a run's life makes a new one with
:func:`dataclasses.replace`, so an entry that has been published or written to a
manifest never changes under its reader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = ["LOCAL_FIELDS", "RunEntry", "Status", "iso"]


class Status(str, Enum):
    """Where a run's log is: ``pending`` while the run or its upload goes on, ``stored`` once
    the storage confirmed it, ``failed`` when every upload attempt failed (the log then
    waits in the worker's spool folder)."""

    PENDING = "pending"
    STORED = "stored"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


# Manifest fields that describe the spool file, not the stored log.
LOCAL_FIELDS = ("version", "hostname", "pid")


def iso(moment: datetime) -> str:
    """A time as entries write it: ISO 8601 with milliseconds and its offset."""
    return moment.isoformat(timespec="milliseconds")


@dataclasses.dataclass(frozen=True)
class RunEntry:
    """Where one run's log is, whether it is there yet, and how the run ended.

    Only a log whose ``status`` is ``stored`` is guaranteed to exist at ``uri``.
    ``attempt`` counts Celery's retries (1 for the first run); ``delivery`` counts
    deliveries of one message (2 when a message came back after its worker was lost),
    so a redelivered run has a log, a key and a row of its own.
    """

    status: Status
    uri: str
    storage: str
    key: str
    attempt: int
    task_id: str
    task_name: str = ""
    root_id: str | None = None
    delivery: int = 1
    started: str | None = None
    finished: str | None = None
    task_state: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    complete: bool | None = None
    incomplete_reason: str | None = None
    omitted: Mapping[str, int] | None = None
    write_error: str | None = None
    error: str | None = None
    spool: str | None = None
    earlier_keys: tuple[str, ...] | None = None
    redelivery_of: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    recovered: str | None = None

    @property
    def stored(self) -> bool:
        return self.status is Status.STORED

    @property
    def finished_run(self) -> bool:
        """Whether the run reached ``task_postrun`` (a lost run never did)."""
        return self.finished is not None

    @property
    def order(self) -> tuple[int, int]:
        """Which of two entries of one task is the later run: attempt, then delivery."""
        return self.attempt, self.delivery

    def to_wire(self) -> dict[str, Any]:
        """The entry as JSON-ready fields, leaving out those that are not set."""
        wire: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None or (field.name == "counts" and not value and not self.finished):
                continue  # a run's counts are written once it has finished
            if isinstance(value, Status):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            wire[field.name] = value
        return wire

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RunEntry:
        """An entry from its wire form (or a manifest); unknown fields are ignored, so an
        entry written by a newer version can still be read."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        try:
            values["status"] = Status(values.get("status", Status.PENDING))
        except ValueError:
            values["status"] = Status.PENDING
        for name in ("uri", "storage", "key", "task_id", "task_name"):
            values[name] = str(values.get(name) or "")
        values["attempt"] = _positive(values.get("attempt"))
        values["delivery"] = _positive(values.get("delivery"))
        if values.get("earlier_keys") is not None:
            values["earlier_keys"] = tuple(str(key) for key in values["earlier_keys"])
        if not isinstance(values.get("counts"), Mapping):
            values.pop("counts", None)
        if values.get("omitted") is not None and not isinstance(values["omitted"], Mapping):
            values["omitted"] = None
        return cls(**values)

    from_entry = from_wire

    def to_manifest(self, *, hostname: str, pid: int) -> dict[str, Any]:
        """The manifest of the run's spool file: the wire form plus where it was written."""
        return {"version": 1, **self.to_wire(), "hostname": hostname, "pid": pid}

    def replace(self, **changes: Any) -> RunEntry:
        return dataclasses.replace(self, **changes)


def _positive(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return max(number, 1)
