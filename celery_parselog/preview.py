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

Decompressed text is bounded too (:data:`HEAD_MAX_TEXT_BYTES` for the head), so a
small gzip bomb cannot make a page view decompress a gigabyte. Lines longer than
:data:`LINE_MAX_BYTES` are cut. Each shown line carries its highlight
(:mod:`celery_parselog.lines`).

:func:`read_page` reads one page of the whole log for the admin's log page, with a
level filter and a text search, within :data:`PAGE_MAX_TEXT_BYTES` of text.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from celery_parselog.lines import LineClassifier
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
    "HEAD_MAX_TEXT_BYTES",
    "LINE_MAX_BYTES",
    "PAGE_LINES",
    "PAGE_MAX_TEXT_BYTES",
    "TAIL_MAX_BYTES",
    "TAIL_MAX_TEXT_BYTES",
    "LogPage",
    "Preview",
    "PreviewLine",
    "build_preview",
    "read_page",
]

HEAD_MAX_BYTES = 1024 * 1024
# Enough for PREVIEW_LINES' largest value of lines cut at LINE_MAX_BYTES.
HEAD_MAX_TEXT_BYTES = 16 * 1024 * 1024
TAIL_MAX_BYTES = 4 * 1024 * 1024
TAIL_MAX_TEXT_BYTES = 64 * 1024 * 1024
LINE_MAX_BYTES = 2000
PAGE_LINES = 500
# As much text as the default MAX_BYTES cap lets a log have, so a capped log can be
# read to its end in the browser.
PAGE_MAX_TEXT_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class PreviewLine:
    """One shown line, with its line number when it is known."""

    number: int | None
    text: str
    css: str = ""


@dataclass
class Preview:
    """What a log's page shows of it, and notes on what it leaves out."""

    head: list[PreviewLine] = field(default_factory=list)
    tail: list[PreviewLine] = field(default_factory=list)
    whole: bool = False
    gap: str = ""
    notes: list[str] = field(default_factory=list)
    bytes_read: int = 0
    text_read: int = 0
    error: str = ""


class _TextCounter:
    """Counts the decompressed bytes a reading produced, across its passes."""

    def __init__(self) -> None:
        self.total = 0

    def count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for data in chunks:
            self.total += len(data)
            yield data


def _text_lines(
    raw: BoundedStream, text_limit: int | None = None, counter: _TextCounter | None = None
) -> Iterator[bytes]:
    chunks = decompressed_chunks(raw)
    if text_limit is not None:
        chunks = capped(chunks, text_limit, raw)
    if counter is not None:
        chunks = counter.count(chunks)
    return split_lines(chunks, max_line=LINE_MAX_BYTES)


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def build_preview(location: LogLocation, lines: int, *, size: int | None = None) -> Preview:
    """The first and last ``lines`` lines of a stored log.

    ``size`` is the stored size when known (from the row); otherwise the storage is
    asked. A missing object or an unreadable storage gives a preview with ``error``.
    """
    preview = Preview()
    counter = _TextCounter()
    try:
        if size is None:
            size = stored_size(location)
        _read_head(location, lines, preview, counter)
        if not preview.whole:
            _read_tail(location, lines, size, preview, counter)
    except FileNotFoundError:
        preview.error = "The log is not in the storage (it may have been purged)."
    except Exception as error:  # noqa: BLE001 - any storage error is shown, not raised
        preview.error = f"The log could not be read: {type(error).__name__}: {error}"
    preview.text_read = counter.total
    _highlight(preview)
    return preview


def _highlight(preview: Preview) -> None:
    classifier = LineClassifier()
    preview.head = [_kind(classifier, line) for line in preview.head]
    # The tail's context is unknown unless it follows the head directly.
    if preview.gap:
        classifier = LineClassifier()
    preview.tail = [_kind(classifier, line) for line in preview.tail]


def _kind(classifier: LineClassifier, line: PreviewLine) -> PreviewLine:
    return PreviewLine(line.number, line.text, classifier.classify(line.text).css)


def _read_head(location: LogLocation, lines: int, preview: Preview, counter: _TextCounter) -> None:
    with open_raw(location) as raw:
        budget = BoundedStream(raw, HEAD_MAX_BYTES)
        stream = _text_lines(budget, HEAD_MAX_TEXT_BYTES, counter)
        for number, line in enumerate(stream, start=1):
            if number > lines:
                break
            preview.head.append(PreviewLine(number, _decode(line)))
        else:
            if not budget.exhausted:
                preview.whole = True
            elif not preview.head or len(preview.head) < lines:
                preview.notes.append(
                    f"The first lines are cut after {human_size(HEAD_MAX_BYTES)} of the "
                    f"stored log or {human_size(HEAD_MAX_TEXT_BYTES)} of its text."
                )
        preview.bytes_read += budget.given


def _read_tail(
    location: LogLocation, lines: int, size: int | None, preview: Preview, counter: _TextCounter
) -> None:
    if location.compressed or size is None:
        _read_tail_by_streaming(location, lines, size, preview, counter)
        return
    start = max(0, size - TAIL_MAX_BYTES)
    if start < HEAD_MAX_BYTES:
        # Close enough to the head that they might overlap: read from the start, which
        # stays within HEAD_MAX_BYTES + TAIL_MAX_BYTES and numbers every line.
        _read_tail_by_streaming(location, lines, size, preview, counter)
        return
    with open_raw(location, start) as raw:
        budget = BoundedStream(raw, TAIL_MAX_BYTES)
        stream = _text_lines(budget, None, counter)
        next(stream, None)  # the first line read is most likely the end of a longer one
        kept: deque[bytes] = deque(stream, maxlen=lines)
        preview.bytes_read += budget.given
    preview.tail = [PreviewLine(None, _decode(line)) for line in kept]
    preview.gap = "… lines not shown …"


def _read_tail_by_streaming(
    location: LogLocation, lines: int, size: int | None, preview: Preview, counter: _TextCounter
) -> None:
    limit = HEAD_MAX_BYTES + TAIL_MAX_BYTES if not location.compressed else TAIL_MAX_BYTES
    if size is not None and size > limit:
        preview.notes.append(_too_big(size, limit, location.compressed))
        return
    kept: deque[tuple[int, bytes]] = deque(maxlen=lines)
    total = 0
    with open_raw(location) as raw:
        budget = BoundedStream(raw, limit)
        for total, line in enumerate(_text_lines(budget, TAIL_MAX_TEXT_BYTES, counter), start=1):
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


@dataclass
class LogPage:
    """One page of a log's lines, as the whole-log page shows it.

    Line numbers count every line of the log from 1, whatever the filter, so a line
    can be linked to. ``previous_start`` and ``next_start`` are the ``start`` of the
    pages before and after (``None`` when there is none); ``scanned_to`` is the last
    line looked at.
    """

    lines: list[PreviewLine] = field(default_factory=list)
    start: int = 1
    previous_start: int | None = None
    next_start: int | None = None
    scanned_to: int = 0
    ended: bool = False
    notes: list[str] = field(default_factory=list)
    text_read: int = 0
    error: str = ""


def read_page(
    location: LogLocation,
    *,
    start: int = 1,
    lines: int = PAGE_LINES,
    min_level: int | None = None,
    query: str = "",
    text_limit: int = PAGE_MAX_TEXT_BYTES,
) -> LogPage:
    """Up to ``lines`` lines from line ``start`` on that pass the filters.

    ``min_level`` keeps lines of records at that level or above (a traceback goes with
    its record); ``query`` keeps lines containing it, ignoring case. A gzip stream
    cannot be entered part-way, so every page streams the log from its start and
    skips to ``start``; reading stops once the page is full, or after ``text_limit``
    bytes of text, and the page says so.
    """
    page = LogPage(start=max(1, start))
    needle = query.casefold()
    classifier = LineClassifier()
    counter = _TextCounter()
    before: deque[int] = deque(maxlen=lines)
    try:
        with open_raw(location) as raw:
            budget = BoundedStream(raw, 2**62)
            for number, line in enumerate(_text_lines(budget, text_limit, counter), start=1):
                page.scanned_to = number
                text = _decode(line)
                kind = classifier.classify(text)
                if min_level is not None and (kind.level is None or kind.level < min_level):
                    continue
                if needle and needle not in text.casefold():
                    continue
                if number < page.start:
                    before.append(number)
                    continue
                if len(page.lines) == lines:
                    page.next_start = number
                    break
                page.lines.append(PreviewLine(number, text, kind.css))
            else:
                page.ended = not budget.exhausted
                if budget.exhausted:
                    page.notes.append(
                        f"Reading stopped after {human_size(text_limit)} of the log's text, "
                        f"at line {page.scanned_to:,}. Download the log, or use manage.py "
                        "parselog_show, to read the rest."
                    )
    except FileNotFoundError:
        page.error = "The log is not in the storage (it may have been purged)."
    except Exception as error:  # noqa: BLE001 - any storage error is shown, not raised
        page.error = f"The log could not be read: {type(error).__name__}: {error}"
    if before:
        page.previous_start = before[0]
    page.text_read = counter.total
    return page
