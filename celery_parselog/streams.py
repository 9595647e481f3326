"""Byte-stream pieces shared by the code that writes spool files and the code that reads logs.

Kept apart so the writers (capture, tail, recovery, storage) and the readers agree on
one chunk size and one way of reading a gzip stream that was cut short.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["CHUNK", "Readable", "Writer", "copy_stream", "readable_gzip_chunks"]

CHUNK = 1024 * 1024


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def copy_stream(source: Readable, target: Writer) -> bytes:
    """Copy ``source`` to its end; returns the last byte copied (``b""`` for none)."""
    last = b""
    while chunk := source.read(CHUNK):
        target.write(chunk)
        last = chunk[-1:]
    return last


def readable_gzip_chunks(source: Readable) -> Iterator[bytes]:
    """The text a gzip stream holds, up to its first damage.

    A killed writer leaves a stream with no end, a crashed machine may leave zeros, and
    a log may be several gzip members one after another (a checkpoint of a capped log
    is). Everything before the first bad byte is yielded; nothing after it.
    """
    decompressor = zlib.decompressobj(wbits=31)
    while chunk := source.read(CHUNK):
        while chunk:
            outputs, damaged = _decompress_until_damage(decompressor, chunk, CHUNK)
            yield from (output for output in outputs if output)
            if damaged:
                return
            # Another gzip member may follow the end of this one.
            chunk = decompressor.unused_data if decompressor.eof else b""
            if chunk:
                decompressor = zlib.decompressobj(wbits=31)


def _decompress_until_damage(
    decompressor: Any, data: bytes, piece: int
) -> tuple[list[bytes], bool]:
    """Feed ``data`` in pieces; where a piece fails, go over it again in smaller pieces
    (from a copy taken before it), down to single bytes. Returns the outputs and
    whether damage was found."""
    outputs: list[bytes] = []
    for start in range(0, len(data), piece):
        part = data[start : start + piece]
        before = decompressor.copy()
        try:
            outputs.append(decompressor.decompress(part))
        except zlib.error:
            if piece > 1:
                more, _ = _decompress_until_damage(before, part, max(piece // 64, 1))
                outputs.extend(more)
            return outputs, True
        if decompressor.eof:
            return outputs, False
    return outputs, False
