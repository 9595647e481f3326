"""The end of a log that outgrew ``CELERY_PARSELOG_MAX_BYTES``, kept on disk in two segments.

Once a run's log passes half the cap, its head is complete and every further record
goes to the tail: two plain files beside the spool file. When the current one is
full it becomes the older one, a new current one is started, and what the previous
older one held is counted as left out. So the tail always holds the last records (between a quarter
and a half of the cap), disk use stays bounded, and memory does not grow at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Protocol

__all__ = ["LogTail", "tail_paths"]

_CHUNK = 1024 * 1024


class _Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


def tail_paths(spool: Path) -> tuple[Path, Path]:
    """The older and the current tail segment of ``spool`` (recovery reads them in order)."""
    return spool.with_name(spool.name + ".tail-0"), spool.with_name(spool.name + ".tail-1")


class LogTail:
    """The last records of a capped log. Not thread-safe: its run's lock guards it.

    The current segment is always ``.tail-1`` and the older one ``.tail-0`` (made
    by renaming), so a reader after a crash knows their order without timestamps.
    """

    def __init__(self, spool: Path, budget: int) -> None:
        self._older_path, self._current_path = tail_paths(spool)
        self._segment_limit = max(budget // 2, 1)
        self._older: _Segment | None = None
        self._current = _Segment(self._current_path)
        self.omitted_records = 0
        self.omitted_bytes = 0

    def write(self, data: bytes) -> None:
        current = self._current
        if current.size and current.size + len(data) > self._segment_limit:
            if self._older is not None:
                self.omitted_records += self._older.records
                self.omitted_bytes += self._older.size
                self._older.stream.close()
            self._current_path.replace(self._older_path)  # the open descriptor follows
            self._older = current
            self._current = current = _Segment(self._current_path)
        current.stream.write(data)
        current.size += len(data)
        current.records += 1

    def drain_into(self, out: _Writer) -> None:
        """Copy the kept records, oldest first, to the end of the log."""
        for path in (self._older_path, self._current_path):
            if path.exists():
                with path.open("rb") as segment:
                    while chunk := segment.read(_CHUNK):
                        out.write(chunk)

    def remove(self) -> None:
        for segment in (self._older, self._current):
            if segment is not None:
                segment.stream.close()
        self._older_path.unlink(missing_ok=True)
        self._current_path.unlink(missing_ok=True)


class _Segment:
    def __init__(self, path: Path) -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.stream: IO[bytes] = os.fdopen(descriptor, "wb", 0)
        self.size = 0
        self.records = 0
