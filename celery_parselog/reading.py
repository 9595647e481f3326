"""Reading stored logs back in bounded pieces: streamed, decompressed, never fetched whole.

The admin's preview, the comparison and the commands read logs that may be hundreds
of megabytes. Everything here reads a stream chunk by chunk and stops as soon as the
caller has what it needs, so the bytes fetched stay within the caller's bound.

For S3, Django's ``storage.open()`` gives an ``S3File`` that downloads the whole
object the first time it is read; here the object's body is streamed instead (with a
``Range`` when starting part-way), through the storage's own bucket and credentials.
Other storages are read through ``storage.open()``, seeking when they can.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from django.core.files.storage import Storage, storages

from celery_parselog.storage import is_s3

__all__ = [
    "CHUNK",
    "CUT_LINE",
    "BoundedStream",
    "LogLocation",
    "RawStream",
    "capped",
    "decompressed_chunks",
    "human_size",
    "open_raw",
    "split_lines",
    "stored_size",
]

CHUNK = 64 * 1024
CUT_LINE = " \u2026 [line cut]".encode()
_GZIP_MAGIC = b"\x1f\x8b"


class RawStream(Protocol):
    """What is read from: a binary stream with ``read(size)``."""

    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class LogLocation:
    """A stored log: the storage alias and the key inside it."""

    storage: str
    key: str

    @property
    def backend(self) -> Storage:
        return storages[self.storage]

    @property
    def compressed(self) -> bool:
        """Judged by name; :func:`decompressed_chunks` also recognizes gzip by content."""
        return self.key.endswith(".gz")


def stored_size(location: LogLocation) -> int | None:
    """The stored (compressed) size in bytes, or ``None`` when the storage cannot tell."""
    try:
        return int(location.backend.size(location.key))
    except (NotImplementedError, AttributeError):
        return None


@contextmanager
def open_raw(location: LogLocation, start: int = 0) -> Iterator[RawStream]:
    """The stored bytes from offset ``start`` on, as a stream read lazily.

    Raises ``FileNotFoundError`` when the object is missing. ``start`` is honoured by
    S3 (a ranged request) and by storages whose files can seek; for others it raises
    ``io.UnsupportedOperation`` (``OSError``).
    """
    storage = location.backend
    if is_s3(storage):
        with _s3_body(storage, location.key, start) as body:
            yield body
        return
    handle: Any = storage.open(location.key, "rb")
    try:
        if start:
            handle.seek(start)
        yield handle
    finally:
        handle.close()


@contextmanager
def _s3_body(storage: Any, key: str, start: int) -> Iterator[RawStream]:
    """Stream an S3 object's body without ``S3File``'s download of the whole object.

    ``storage.open()`` still names the object (location, clean name) and raises
    ``FileNotFoundError`` for a missing one; only its ``obj`` is used, to ``GET`` the
    body as a stream, from ``start`` on.
    """
    from botocore.exceptions import ClientError

    handle = storage.open(key, "rb")
    arguments: dict[str, Any] = {}
    if start:
        arguments["Range"] = f"bytes={start}-"
    try:
        response = handle.obj.get(**arguments)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(key) from error
        if code == "InvalidRange":  # starting at or past the end: nothing to read
            yield _Empty()
            return
        raise
    body = response["Body"]
    try:
        yield body
    finally:
        body.close()
        handle.close()


class BoundedStream:
    """A stream that gives at most ``limit`` bytes and counts what it gave.

    ``exhausted`` says the limit stopped reading (the log goes on); ``ended`` says the
    stream itself ended first.
    """

    def __init__(self, raw: RawStream, limit: int) -> None:
        self._raw = raw
        self._left = limit
        self.given = 0
        self.exhausted = False
        self.ended = False

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            self.exhausted = True
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._raw.read(want)
        self.given += len(data)
        self._left -= len(data)
        if not data:
            self.ended = True
        return data


def capped(chunks: Iterable[bytes], limit: int, stream: BoundedStream) -> Iterator[bytes]:
    """``chunks`` up to ``limit`` bytes in all; past it, stop and mark ``stream`` exhausted.

    Bounds decompressed text, which a few compressed bytes can make very large.
    """
    total = 0
    for data in chunks:
        room = limit - total
        if len(data) > room:
            if room > 0:
                yield data[:room]
            stream.exhausted = True
            return
        total += len(data)
        yield data


class _Empty:
    def read(self, size: int = -1, /) -> bytes:
        return b""


def decompressed_chunks(raw: RawStream, *, chunk: int = CHUNK) -> Iterator[bytes]:
    """The text bytes of a stored log, gzip or plain, decompressed as it is read.

    Gzip is recognized by its magic bytes, so a log is read correctly whatever its
    name. Concatenated gzip members are all read. A stream cut short (a log whose
    writer was killed) yields what could be decompressed and stops. No piece yielded
    is longer than ``chunk``, however well the input compresses.
    """
    first = raw.read(chunk)
    if not first.startswith(_GZIP_MAGIC):
        data = first
        while data:
            yield data
            data = raw.read(chunk)
        return
    decompressor = zlib.decompressobj(wbits=31)
    data = first
    while data:
        pending = data
        while pending:
            try:
                # At most one chunk of text per call: a few bytes of gzip can stand for
                # gigabytes, and the caller's bound must hold before they exist.
                text = decompressor.decompress(pending, chunk)
            except zlib.error:
                return
            if text:
                yield text
            if decompressor.eof:
                # Another gzip member may follow the end of this one.
                pending = decompressor.unused_data
                if pending:
                    decompressor = zlib.decompressobj(wbits=31)
            else:
                pending = decompressor.unconsumed_tail
        data = raw.read(chunk)
    if not decompressor.eof:
        try:
            tail = decompressor.flush()
        except zlib.error:
            return
        if tail:
            yield tail


def split_lines(chunks: Iterable[bytes], *, max_line: int | None = None) -> Iterator[bytes]:
    """Whole lines (without their ``\\n``) from a stream of chunks; the last may lack one.

    With ``max_line``, a longer line keeps its first ``max_line`` bytes followed by
    :data:`CUT_LINE`, and the rest is skipped as it streams by, so one enormous line
    (a 10 MB JSON blob) cannot fill memory.
    """
    parts: list[bytes] = []
    held = 0
    cut = False
    for data in chunks:
        start = 0
        while start <= len(data):
            end = data.find(b"\n", start)
            piece = data[start:] if end == -1 else data[start:end]
            if max_line is not None and held + len(piece) > max_line:
                piece = piece[: max(0, max_line - held)]
                cut = True
            if piece:
                parts.append(piece)
                held += len(piece)
            if end == -1:
                break
            yield b"".join(parts) + (CUT_LINE if cut else b"")
            parts.clear()
            held = 0
            cut = False
            start = end + 1
    if parts or cut:
        yield b"".join(parts) + (CUT_LINE if cut else b"")


def human_size(size: int) -> str:
    """A byte count as people read it: ``812 bytes``, ``4 MiB``, ``1.5 GiB``."""
    if size < 1024:
        return f"{size:,} bytes"
    value = float(size)
    units = ("KiB", "MiB", "GiB", "TiB")
    for unit in units:
        value /= 1024
        if value < 1024 or unit == units[-1]:
            return f"{f'{value:,.1f}'.removesuffix('.0')} {unit}"
    raise AssertionError("unreachable")
