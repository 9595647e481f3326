"""Comparing two runs' logs: a side-by-side summary and a diff that ignores what always changes.

Two runs of the same parse differ in their times, task ids and durations on nearly
every line, which would bury the differences that matter. Each line is normalized
first (:func:`normalize_line`): timestamps, UUIDs and the runs' task ids, durations
such as ``in 0.0123s`` and memory addresses such as ``0x7f3a…`` become placeholders.

Counts by logger are taken from the text, which needs a format where the level name
is followed by the logger name (the default
``%(asctime)s %(levelname)s %(name)s: %(message)s`` is), or JSON lines. Lines of
other shapes (traceback lines, other formats) are counted under no logger.

Both the admin's compare page and ``manage.py parselog_diff`` use :func:`compare_runs`.
Very large logs are compared within bounds: at most :data:`TEXT_MAX_BYTES` of each
log's text is read, and the diff stops after :data:`DIFF_MAX_LINES` lines; the
comparison's ``notes`` say what was left out.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery_parselog.reading import (
    BoundedStream,
    LogLocation,
    capped,
    decompressed_chunks,
    human_size,
    open_raw,
    split_lines,
)

if TYPE_CHECKING:
    from celery_parselog.models import TaskLog

__all__ = [
    "DIFF_MAX_LINES",
    "LINE_MAX_BYTES",
    "TEXT_MAX_BYTES",
    "Comparison",
    "LogText",
    "RunSummary",
    "SummaryRow",
    "compare_runs",
    "count_by_logger",
    "normalize_line",
    "parse_level_and_logger",
    "read_log_text",
]

TEXT_MAX_BYTES = 8 * 1024 * 1024
DIFF_MAX_LINES = 5000
LINE_MAX_BYTES = 2000
NO_LOGGER = "(no logger)"

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}\b")
_UNIT = r"(?:ns|us|µs|ms|s|sec|secs|seconds?|milliseconds?)\b"
_DECIMAL_DURATION = re.compile(rf"\b\d+\.\d+\s?{_UNIT}")
_WORDED_DURATION = re.compile(rf"\b(in|took|after|elapsed)(\s*[=:]?\s*)\d+\s?{_UNIT}")
_HEADER = re.compile(
    r"^(?:\S+\s+){0,3}?\[?(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?"
    r"\s+\[?(?P<logger>[^\s:\[\]]+)\]?(?::|\s|$)"
)


def normalize_line(line: str, task_ids: Iterable[str] = ()) -> str:
    """``line`` with its volatile parts replaced by placeholders, so equal runs compare equal.

    ``task_ids`` (the compared runs' ids, which need not be UUIDs) become
    ``<task-id>``; timestamps ``<time>``; other UUIDs ``<uuid>``; durations
    ``<duration>``; memory addresses ``<addr>``.
    """
    for task_id in sorted((t for t in task_ids if t), key=len, reverse=True):
        line = line.replace(task_id, "<task-id>")
    line = _TIMESTAMP.sub("<time>", line)
    line = _CLOCK.sub("<time>", line)
    line = _UUID.sub("<uuid>", line)
    line = _ADDRESS.sub("<addr>", line)
    line = _WORDED_DURATION.sub(r"\1\2<duration>", line)
    return _DECIMAL_DURATION.sub("<duration>", line)


def parse_level_and_logger(line: str) -> tuple[str, str] | None:
    """The level and logger names a log line starts with, or ``None`` for other lines.

    Understands JSON lines (``level`` and ``logger``) and text lines where the level
    name is followed by the logger name, after at most three leading fields.
    """
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if isinstance(record, dict) and isinstance(record.get("logger"), str):
            return str(record.get("level", "")), record["logger"]
        return None
    match = _HEADER.match(line)
    if match is None:
        return None
    return match["level"], match["logger"]


def count_by_logger(lines: Iterable[str]) -> dict[str, int]:
    """Lines per logger name, most first; lines without a header count under ``(no logger)``."""
    counts: Counter[str] = Counter()
    for line in lines:
        parsed = parse_level_and_logger(line)
        counts[parsed[1] if parsed else NO_LOGGER] += 1
    return dict(counts.most_common())


def _count_levels(lines: Iterable[str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for line in lines:
        parsed = parse_level_and_logger(line)
        if parsed is not None and parsed[0]:
            counts[parsed[0]] += 1
    return dict(counts)


@dataclass(frozen=True)
class LogText:
    """Up to :data:`TEXT_MAX_BYTES` of one log's text, as lines."""

    lines: list[str]
    text_bytes: int
    truncated: bool
    error: str = ""


def read_log_text(location: LogLocation, *, max_bytes: int = TEXT_MAX_BYTES) -> LogText:
    """The first ``max_bytes`` of a stored log's text; a read error is reported, not raised."""
    try:
        with open_raw(location) as raw:
            # The stored bytes are bounded too: a plain log's are its text, and a
            # gzip log is smaller than its text (the cap is generous for the rare
            # incompressible one).
            stream = BoundedStream(raw, max_bytes)
            chunks = capped(decompressed_chunks(stream), max_bytes, stream)
            lines = [
                line.decode("utf-8", "replace")
                for line in split_lines(chunks, max_line=LINE_MAX_BYTES)
            ]
    except FileNotFoundError:
        return LogText([], 0, False, "the log is not in the storage")
    except Exception as error:  # noqa: BLE001 - shown beside the other run, not raised
        return LogText([], 0, False, f"the log could not be read: {type(error).__name__}: {error}")
    text_bytes = sum(len(line.encode("utf-8")) + 1 for line in lines)
    return LogText(lines, text_bytes, stream.exhausted)


@dataclass(frozen=True)
class RunSummary:
    """What the comparison says about one run."""

    label: str
    pk: int
    task_id: str
    task_name: str
    attempt: int
    subject: str
    state: str
    upload_status: str
    started: datetime
    duration: float | None
    stored_bytes: int | None
    complete: bool | None
    levels: dict[str, int]
    loggers: dict[str, int]
    lines_read: int
    text_bytes: int
    text_truncated: bool
    text_error: str


@dataclass(frozen=True)
class SummaryRow:
    """One line of the side-by-side summary."""

    label: str
    a: str
    b: str

    @property
    def differs(self) -> bool:
        return self.a != self.b


@dataclass
class Comparison:
    """Two runs side by side, and the diff of their normalized logs."""

    a: RunSummary
    b: RunSummary
    rows: list[SummaryRow]
    level_rows: list[SummaryRow]
    logger_rows: list[SummaryRow]
    diff: list[str]
    diff_cut: bool = False
    identical: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def classified_diff(self) -> list[tuple[str, str]]:
        """The diff's lines with their kind: ``file``, ``hunk``, ``add``, ``del`` or ``ctx``."""
        return [(_kind(number, line), line) for number, line in enumerate(self.diff)]


def _kind(number: int, line: str) -> str:
    if number < 2 and line.startswith(("---", "+++")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "ctx")


def compare_runs(
    a: TaskLog,
    b: TaskLog,
    *,
    context: int = 3,
    max_diff_lines: int = DIFF_MAX_LINES,
    max_bytes: int = TEXT_MAX_BYTES,
) -> Comparison:
    """Compare run ``a`` (usually the earlier) with run ``b``."""
    texts = [_text_of(a, max_bytes), _text_of(b, max_bytes)]
    summaries = [_summary("A", a, texts[0]), _summary("B", b, texts[1])]
    task_ids = [a.task_id, b.task_id]
    notes = _notes(summaries, max_bytes)
    comparison = Comparison(
        a=summaries[0],
        b=summaries[1],
        rows=_general_rows(*summaries),
        level_rows=_count_rows(summaries[0].levels, summaries[1].levels, by_level=True),
        logger_rows=_count_rows(summaries[0].loggers, summaries[1].loggers),
        diff=[],
        notes=notes,
    )
    if any(text is None or text.error for text in texts):
        notes.append("No diff: both logs must be stored and readable.")
        return comparison
    a_text, b_text = (text.lines if text else [] for text in texts)
    a_lines = [normalize_line(line, task_ids) for line in a_text]
    b_lines = [normalize_line(line, task_ids) for line in b_text]
    comparison.identical = a_lines == b_lines
    if comparison.identical:
        return comparison
    diff = difflib.unified_diff(
        a_lines,
        b_lines,
        fromfile=_diff_name(a, "A"),
        tofile=_diff_name(b, "B"),
        lineterm="",
        n=context,
    )
    for line in diff:
        if len(comparison.diff) >= max_diff_lines:
            comparison.diff_cut = True
            left_out = 1 + sum(1 for _ in diff)
            notes.append(
                f"The diff is cut after {max_diff_lines:,} lines; "
                f"{left_out:,} more diff lines are not shown."
            )
            break
        comparison.diff.append(line)
    return comparison


def _text_of(row: TaskLog, max_bytes: int) -> LogText | None:
    if not row.is_stored:
        return None
    return read_log_text(LogLocation(row.storage, row.key), max_bytes=max_bytes)


def _summary(label: str, row: TaskLog, text: LogText | None) -> RunSummary:
    lines = text.lines if text is not None else []
    error = f"the log is not stored (upload {row.upload_status})" if text is None else text.error
    levels = {str(k): int(v) for k, v in (row.counts or {}).items()} or _count_levels(lines)
    return RunSummary(
        label=label,
        pk=row.pk,
        task_id=row.task_id,
        task_name=row.task_name,
        attempt=row.attempt,
        subject=row.subject,
        state=row.state,
        upload_status=row.upload_status,
        started=row.started,
        duration=row.duration_seconds,
        stored_bytes=row.bytes,
        complete=row.complete,
        levels=levels,
        loggers=count_by_logger(lines),
        lines_read=len(lines),
        text_bytes=text.text_bytes if text else 0,
        text_truncated=text.truncated if text else False,
        text_error=error,
    )


def _notes(summaries: Sequence[RunSummary], max_bytes: int) -> list[str]:
    notes = []
    for summary in summaries:
        if summary.text_error:
            notes.append(f"{summary.label}: {summary.text_error}.")
        elif summary.text_truncated:
            notes.append(
                f"{summary.label}: only the first {human_size(max_bytes)} of the log's text "
                f"({summary.lines_read:,} lines) was read; the rest is left out of the diff "
                "and of the counts by logger."
            )
    return notes


def _diff_name(row: TaskLog, label: str) -> str:
    return f"{label}: {row.task_name or 'task'}[{row.task_id}] attempt {row.attempt}"


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f} s"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _general_rows(a: RunSummary, b: RunSummary) -> list[SummaryRow]:
    def row(label: str, get: Any) -> SummaryRow:
        return SummaryRow(label, _text(get(a)), _text(get(b)))

    return [
        row("Task", lambda s: s.task_name),
        row("Task id", lambda s: s.task_id),
        row("Attempt", lambda s: s.attempt),
        row("Subject", lambda s: s.subject or None),
        row("Started", lambda s: s.started),
        row("State", lambda s: s.state),
        row("Duration", lambda s: s.duration),
        row("Upload", lambda s: s.upload_status),
        row("Complete", lambda s: s.complete),
        row(
            "Stored size",
            lambda s: f"{s.stored_bytes:,} bytes" if s.stored_bytes is not None else None,
        ),
        row("Lines read", lambda s: f"{s.lines_read:,}" + (" (cut)" if s.text_truncated else "")),
    ]


def _count_rows(
    a: Mapping[str, int], b: Mapping[str, int], *, by_level: bool = False
) -> list[SummaryRow]:
    """Rows of counts: levels in severity order, loggers most frequent first."""

    def order(name: str) -> tuple[int, str]:
        if by_level:
            number = logging.getLevelName(name)
            return (number if isinstance(number, int) else 1000, name)
        return (-(a.get(name, 0) + b.get(name, 0)), name)

    names = sorted(set(a) | set(b), key=order)
    return [SummaryRow(name, str(a.get(name, 0)), str(b.get(name, 0))) for name in names]
