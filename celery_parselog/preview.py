"""The first and last lines of a stored log, read within fixed byte bounds.

Showing a run's page must stay quick and cheap whatever the log's size, so a preview
never fetches the whole object:

* the **head** is streamed (through gzip when compressed) and reading stops once the
  first lines are in, or after :data:`HEAD_MAX_BYTES` stored bytes;
* the **tail** of a plain log is read from ``size - TAIL_MAX_BYTES`` on (a ranged or
  seeking read). A gzip stream cannot be entered part-way, so the tail of a compressed
  log is found by decompressing it from the start, keeping only the last lines, and
  only when it is at most :data:`TAIL_MAX_BYTES` stored (and
  :data:`TAIL_MAX_TEXT_BYTES` once decompressed); a bigger one is not read, and the
  preview says so.

Lines longer than :data:`LINE_MAX_BYTES` are cut.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from celery_parselog.reading import (
    BoundedStream,
    LogLocation,
    capped,
    decompressed_chunks,
    human_size,
    open_raw,
    split_lines,
    stored_size,
)

__all__ = [
    "HEAD_MAX_BYTES",
    "LINE_MAX_BYTES",
    "TAIL_MAX_BYTES",
    "TAIL_MAX_TEXT_BYTES",
    "Preview",
    "PreviewLine",
    "build_preview",
]

HEAD_MAX_BYTES = 1024 * 1024
TAIL_MAX_BYTES = 4 * 1024 * 1024
TAIL_MAX_TEXT_BYTES = 64 * 1024 * 1024
LINE_MAX_BYTES = 2000


@dataclass(frozen=True)
class PreviewLine:
    """One shown line, with its line number when it is known."""

    number: int | None
    text: str


@dataclass
class Preview:
    """What a log's page shows of it, and notes on what it leaves out."""

    head: list[PreviewLine] = field(default_factory=list)
    tail: list[PreviewLine] = field(default_factory=list)
    whole: bool = False
    gap: str = ""
    notes: list[str] = field(default_factory=list)
    bytes_read: int = 0
    error: str = ""


def _text_lines(raw: BoundedStream, text_limit: int | None = None) -> Iterator[bytes]:
    chunks = decompressed_chunks(raw)
    if text_limit is not None:
        chunks = capped(chunks, text_limit, raw)
    return split_lines(chunks, max_line=LINE_MAX_BYTES)


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def build_preview(location: LogLocation, lines: int, *, size: int | None = None) -> Preview:
    """The first and last ``lines`` lines of a stored log.

    ``size`` is the stored size when known (from the row); otherwise the storage is
    asked. A missing object or an unreadable storage gives a preview with ``error``.
    """
    preview = Preview()
    try:
        if size is None:
            size = stored_size(location)
        _read_head(location, lines, preview)
        if not preview.whole:
            _read_tail(location, lines, size, preview)
    except FileNotFoundError:
        preview.error = "The log is not in the storage (it may have been purged)."
    except Exception as error:  # noqa: BLE001 - any storage error is shown, not raised
        preview.error = f"The log could not be read: {type(error).__name__}: {error}"
    return preview


def _read_head(location: LogLocation, lines: int, preview: Preview) -> None:
    with open_raw(location) as raw:
        budget = BoundedStream(raw, HEAD_MAX_BYTES)
        stream = _text_lines(budget)
        for number, line in enumerate(stream, start=1):
            if number > lines:
                break
            preview.head.append(PreviewLine(number, _decode(line)))
        else:
            if not budget.exhausted:
                preview.whole = True
            elif not preview.head or len(preview.head) < lines:
                preview.notes.append(
                    f"The first lines are cut after {human_size(HEAD_MAX_BYTES)} of the log."
                )
        preview.bytes_read += budget.given


def _read_tail(location: LogLocation, lines: int, size: int | None, preview: Preview) -> None:
    if location.compressed or size is None:
        _read_tail_by_streaming(location, lines, size, preview)
        return
    start = max(0, size - TAIL_MAX_BYTES)
    if start < HEAD_MAX_BYTES:
        # Close enough to the head that they might overlap: read from the start, which
        # stays within HEAD_MAX_BYTES + TAIL_MAX_BYTES and numbers every line.
        _read_tail_by_streaming(location, lines, size, preview)
        return
    with open_raw(location, start) as raw:
        budget = BoundedStream(raw, TAIL_MAX_BYTES)
        stream = _text_lines(budget)
        next(stream, None)  # the first line read is most likely the end of a longer one
        kept: deque[bytes] = deque(stream, maxlen=lines)
        preview.bytes_read += budget.given
    preview.tail = [PreviewLine(None, _decode(line)) for line in kept]
    preview.gap = "… lines not shown …"


def _read_tail_by_streaming(
    location: LogLocation, lines: int, size: int | None, preview: Preview
) -> None:
    limit = HEAD_MAX_BYTES + TAIL_MAX_BYTES if not location.compressed else TAIL_MAX_BYTES
    if size is not None and size > limit:
        preview.notes.append(_too_big(size, limit, location.compressed))
        return
    kept: deque[tuple[int, bytes]] = deque(maxlen=lines)
    total = 0
    with open_raw(location) as raw:
        budget = BoundedStream(raw, limit)
        for total, line in enumerate(_text_lines(budget, TAIL_MAX_TEXT_BYTES), start=1):
            kept.append((total, line))
        preview.bytes_read += budget.given
    if budget.exhausted:
        preview.notes.append(_too_big(size, limit, location.compressed))
        return
    shown = len(preview.head)
    tail = [(number, line) for number, line in kept if number > shown]
    if not tail:
        preview.whole = True
        return
    preview.tail = [PreviewLine(number, _decode(line)) for number, line in tail]
    hidden = tail[0][0] - shown - 1
    if hidden > 0:
        preview.gap = f"… {hidden:,} lines not shown …"


def _too_big(size: int | None, limit: int, compressed: bool) -> str:
    how_big = f"is {human_size(size)}" if size is not None else "is larger than that"
    kind = "compressed log" if compressed else "log"
    return (
        f"The last lines are not shown: this {kind} {how_big}, and the preview reads "
        f"at most {human_size(limit)} to find them. Download the log, or use "
        "manage.py parselog_show, to read it all."
    )
