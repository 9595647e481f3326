"""One run's capture: a spool file of its own, written record by record, and what it counted.

A spool file is created with a unique name (task id, attempt and a random part) and
mode 0600, is never shared with another run and is never reused. The run holds the
file's lock (see :mod:`celery_parselog.spool`) until it has stored or given up on it.
Compressed logs are gzip-streamed as they are written, so memory does not grow with
the size of the log; :meth:`RunCapture.sync` pushes what the compressor holds to disk.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import struct
import threading
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from celery_parselog.formatting import LineFormatter, cut_note, unformattable_note
from celery_parselog.spool import (
    close_descriptor,
    closing_held,
    create_private,
    create_spool_file,
)
from celery_parselog.streams import CHUNK
from celery_parselog.tail import LogTail, copy_kept_tail

__all__ = ["RunCapture"]

_ENCODING = "utf-8"
# Lone surrogates (from bytes decoded with surrogateescape) and other unencodable
# text are written as escapes instead of failing the record.
_ERRORS = "backslashreplace"

# Every capture open in this process, so a forked child can be told to keep out.
_open_captures: weakref.WeakSet[RunCapture] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A process forked by a task (a ``multiprocessing`` pool, say) writes nothing into
    its parent's log: it would interleave compressed bytes into the shared file and
    leave an unreadable gzip. Its copies of the runs are closed here, and
    :mod:`celery_parselog.spool` points their descriptors at ``/dev/null``."""
    for capture in list(_open_captures):
        capture._closed = True
        capture._released = True
    _open_captures.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class RunCapture:
    """The log of one run of one task, as it is being written.

    ``emit`` is the hot path: it formats, encodes and writes one record under a lock
    of this run only, so runs in other threads never wait for each other.
    """

    def __init__(
        self,
        *,
        task_id: str,
        task_name: str,
        attempt: int,
        levelno: int,
        formatter: LineFormatter,
        spool_dir: Path,
        compress_level: int,
        allows_logger: Callable[[str], bool],
        max_bytes: int = 0,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.task_id = task_id
        self.task_name = task_name
        self.attempt = attempt
        self.levelno = levelno
        self.allows_logger = allows_logger
        self.counts: dict[str, int] = {}
        self.first_error: str | None = None
        self.saw_exception = False
        # Set while stdout text this run already captured is passed on to the
        # worker's own stdout logger, so the same text is not captured twice.
        self.forwarding = False
        self.last_record: logging.LogRecord | None = None
        # Set when the spool file stopped taking writes; later records are counted only.
        self.write_error: str | None = None
        self._formatter = formatter
        self._redact = redact
        self._lock = threading.Lock()
        self._closed = False
        self._released = False
        # Compressed bytes the compressor still holds; pushed to disk by sync().
        self._unsynced = False
        # Past half of max_bytes, records go to the tail instead (see tail.py).
        self._max_bytes = max_bytes
        self._head_left = max_bytes // 2 if max_bytes else -1
        self._head_bytes = 0
        self._tail: LogTail | None = None
        self._partial_lines: dict[str, list[str]] = {}
        descriptor, self.path = create_spool_file(
            spool_dir, task_id, attempt, compressed=bool(compress_level)
        )
        self._descriptor = descriptor
        self._raw: IO[bytes] = os.fdopen(
            descriptor, "wb", buffering=0 if not compress_level else -1
        )
        self._gzip: gzip.GzipFile | None = None
        self._out: IO[bytes] = self._raw
        if compress_level:
            self._gzip = gzip.GzipFile(
                filename="", mode="wb", fileobj=self._raw, compresslevel=compress_level, mtime=0
            )
            self._out = self._gzip  # type: ignore[assignment]
        _open_captures.add(self)

    @property
    def compressed(self) -> bool:
        return self._gzip is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record. Never raises: a record that cannot be formatted is noted instead."""
        try:
            text = self._formatter.format(record)
        except Exception as error:  # noqa: BLE001 - a broken record must not break the task
            text = self._formatter.note(unformattable_note(record, error))
        if self._redact is not None:
            # On the final text (message, arguments, traceback, JSON extras), before
            # anything is written or kept: nothing unredacted reaches the disk.
            text = self._redact(text)
        data = (text + "\n").encode(_ENCODING, _ERRORS)
        levelname = record.levelname
        with self._lock:
            if self._closed:
                return
            self.last_record = record
            self.counts[levelname] = self.counts.get(levelname, 0) + 1
            if record.exc_info:
                self.saw_exception = True
            if record.levelno >= logging.ERROR and self.first_error is None:
                self.first_error = text.splitlines()[0] if text else ""
            self._write(data)

    def _write(self, data: bytes) -> None:
        """Append encoded lines to the head, or to the tail once the head is full. Lock held."""
        if self.write_error is not None:
            return  # the spool cannot take more; counting goes on for the entry
        try:
            if not self._max_bytes or (self._tail is None and len(data) <= self._head_left):
                self._out.write(data)
                self._head_left -= len(data)
                self._head_bytes += len(data)
                self._unsynced = True
                return
            if self._tail is None:
                self._tail = LogTail(self.path, self._max_bytes - self._max_bytes // 2)
            self._tail.write(data)
        except OSError as error:
            # A full or failing disk must not turn the task's logging call into
            # an exception; the entry reports that the log is incomplete.
            self.write_error = f"{type(error).__name__}: {error}"

    @property
    def omitted(self) -> tuple[int, int]:
        """Records and bytes left out of the middle of a capped log."""
        if self._tail is None:
            return 0, 0
        return self._tail.omitted_records, self._tail.omitted_bytes

    def sync(self) -> None:
        """Push compressed bytes the compressor holds to the file, so a killed process loses none.

        Called five times a second by the router's watcher thread, not per record:
        a sync flush per record would cost several microseconds and most of the
        compression. Plain logs need nothing: each record is one unbuffered write.
        """
        with self._lock:
            if self._closed or not self._unsynced or self._gzip is None:
                return
            self._unsynced = False
            try:
                self._gzip.flush(zlib.Z_SYNC_FLUSH)
            except OSError as error:
                self.write_error = self.write_error or f"{type(error).__name__}: {error}"

    def write_stream(self, stream: str, text: str) -> None:
        """Take text written to ``stdout``/``stderr`` and log it as whole lines.

        ``print("rows", 10)`` arrives as several ``write()`` calls; a line is only
        emitted when its newline arrives (or when the run ends).
        """
        pending = self._partial_lines.setdefault(stream, [])
        if "\n" not in text:
            if text:
                pending.append(text)
            return
        pending.append(text)
        *lines, rest = "".join(pending).split("\n")
        pending[:] = [rest] if rest else []
        for line in lines:
            self._emit_stream_line(stream, line)

    def _emit_stream_line(self, stream: str, line: str) -> None:
        level = logging.WARNING if stream == "stderr" else logging.INFO
        if level < self.levelno or not self.allows_logger(stream):
            return
        self.emit(logging.LogRecord(stream, level, "", 0, line.rstrip("\r"), None, None, func=None))

    def write_note(self, text: str) -> None:
        """Write a line of the package's own (``log incomplete: …``) in the log's format;
        not counted."""
        line = self._formatter.note(text)
        with self._lock:
            if not self._closed:
                self._write(f"{line}\n".encode(_ENCODING, _ERRORS))

    def emit_exception(self, error: BaseException) -> None:
        """Record a failure whose traceback no logger wrote (for example when Celery's is muted)."""
        exc_info: tuple[type[BaseException], BaseException, TracebackType | None] = (
            type(error),
            error,
            error.__traceback__,
        )
        self.emit(
            logging.LogRecord(
                "celery_parselog.task",
                logging.ERROR,
                "",
                0,
                "Task %s[%s] raised %s",
                (self.task_name, self.task_id, type(error).__name__),
                exc_info,
            )
        )

    def snapshot(self, target: Path) -> int | None:
        """Copy what is on disk so far into ``target`` as a complete, readable log.

        For a compressed log the stream is synced, and the copy gets an empty final
        block and the gzip trailer (CRC and length of the text so far), so readers see
        a whole gzip file. A capped log's kept tail follows, after the cut note (as a
        second gzip member when compressed), so a checkpoint holds the log's latest
        records too. Returns the text length of the head, or ``None`` once the run is
        finished. The run's lock is held while the stream is synced and while the tail
        is copied (it is being written under that lock), never during the head's copy.
        """
        with self._lock:
            if self._closed:
                return None
            if self._gzip is not None:
                self._gzip.flush(zlib.Z_SYNC_FLUSH)
                self._unsynced = False
                crc, text_length = self._gzip.crc, self._head_bytes
            else:
                crc, text_length = 0, 0
            length = os.fstat(self._raw.fileno()).st_size
        descriptor = create_private(target)
        try:
            with (
                self.path.open("rb") as source,
                os.fdopen(descriptor, "wb", closefd=False) as copy,
            ):
                remaining = length
                while remaining > 0:
                    chunk = source.read(min(remaining, CHUNK))
                    if not chunk:
                        break
                    copy.write(chunk)
                    remaining -= len(chunk)
                if self._gzip is not None:
                    # An empty final deflate block, then CRC-32 and length, little-endian.
                    copy.write(
                        b"\x03\x00" + struct.pack("<II", crc & 0xFFFFFFFF, text_length & 0xFFFFFFFF)
                    )
                self._snapshot_tail(copy)
        finally:
            close_descriptor(descriptor)
        return int(text_length) if self._gzip is not None else length

    def _snapshot_tail(self, copy: IO[bytes]) -> None:
        with self._lock:
            tail = self._tail
            if tail is None or self._closed:
                return
            note = self._formatter.note(cut_note(*self.omitted, self._max_bytes)) + "\n"
            if self._gzip is None:
                copy.write(note.encode(_ENCODING, _ERRORS))
                copy_kept_tail(self.path, copy)
                return
            with gzip.GzipFile(filename="", mode="wb", fileobj=copy, mtime=0) as member:
                member.write(note.encode(_ENCODING, _ERRORS))
                copy_kept_tail(self.path, member)

    def finish(self) -> None:
        """Write what is pending and complete the file (gzip trailer); keep it open and locked.

        Later records are dropped. The lock stays until :meth:`release` or
        :meth:`discard`, so recovery leaves the file alone while it is being stored.
        """
        for stream, pending in list(self._partial_lines.items()):
            if pending:
                self._emit_stream_line(stream, "".join(pending))
        self._partial_lines.clear()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.last_record = None
            try:
                if self._tail is not None:
                    self._join_tail(self._tail)
                if self._gzip is not None:
                    self._gzip.close()
                self._raw.flush()
            except OSError as error:
                self.write_error = self.write_error or f"{type(error).__name__}: {error}"

    def _join_tail(self, tail: LogTail) -> None:
        """End a capped log with the marker line and the kept tail, then drop the tail files."""
        try:
            if self.write_error is None:
                records, size = tail.omitted_records, tail.omitted_bytes
                if records:
                    note = self._formatter.note(cut_note(records, size, self._max_bytes))
                    self._out.write(f"{note}\n".encode(_ENCODING, _ERRORS))
                tail.drain_into(self._out)
        finally:
            tail.remove()

    def release(self) -> None:
        """Finish, then close the file and drop its lock; the file stays for recovery."""
        self.finish()
        if not self._released:
            self._released = True
            _open_captures.discard(self)
            with closing_held(self._descriptor), contextlib.suppress(OSError):
                self._raw.close()  # the descriptor and lock go even if a flush failed
