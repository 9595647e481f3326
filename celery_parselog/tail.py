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
from typing import IO

from celery_parselog.spool import closing_held, create_private, tail_paths
from celery_parselog.streams import Writer, copy_stream

__all__ = ["LogTail", "copy_kept_tail"]


def copy_kept_tail(spool: Path, out: Writer) -> bytes:
    """Copy a capped log's kept records, oldest first, to ``out``; returns the last byte.

    Used by the run that ends (before removing the segments), by its checkpoints and
    by recovery, which all read the segments the same way.
    """
    last = b""
    for path in tail_paths(spool):
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        with os.fdopen(descriptor, "rb") as segment:
            last = copy_stream(segment, out) or last
    return last


class LogTail:
    """The last records of a capped log. Not thread-safe: its run's lock guards it.

    The current segment is always ``.tail-1`` and the older one ``.tail-0`` (made
    by renaming), so a reader after a crash knows their order without timestamps.
    """

    def __init__(self, spool: Path, budget: int) -> None:
        self._spool = spool
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
                self._older.close()
            self._current_path.replace(self._older_path)  # the open descriptor follows
            self._older = current
            self._current = current = _Segment(self._current_path)
        current.stream.write(data)
        current.size += len(data)
        current.records += 1

    def drain_into(self, out: Writer) -> None:
        """Copy the kept records, oldest first, to the end of the log."""
        copy_kept_tail(self._spool, out)

    def remove(self) -> None:
        for segment in (self._older, self._current):
            if segment is not None:
                segment.close()
        self._older_path.unlink(missing_ok=True)
        self._current_path.unlink(missing_ok=True)


class _Segment:
    def __init__(self, path: Path) -> None:
        self._descriptor = create_private(path)
        self.stream: IO[bytes] = os.fdopen(self._descriptor, "wb", 0)
        self.size = 0
        self.records = 0

    def close(self) -> None:
        if not self.stream.closed:
            with closing_held(self._descriptor):
                self.stream.close()
