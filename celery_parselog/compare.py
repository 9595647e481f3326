"""Comparing two runs' logs: a side-by-side summary, the kinds of message, and a diff.

Both the admin's compare page and ``manage.py parselog_diff`` use :func:`compare_runs`.
Each log is read once, streamed: every line is counted by its template
(:mod:`celery_parselog.kinds`) and the first :data:`TEXT_MAX_BYTES` of text are kept
for the diff, whose lines are normalized first (:mod:`celery_parselog.normalizing`).

Counts by logger are taken from the text, which needs a format where the level name
is followed by the logger name (the default
``%(asctime)s %(levelname)s %(name)s: %(message)s`` is), or JSON lines. Lines of
other shapes (traceback lines, other formats) are counted under no logger.

Everything is bounded, so that a hostile or enormous log cannot hold a page for
long: the summary reads at most :data:`SUMMARY_MAX_BYTES` of each log's text, the
diff compares at most :data:`TEXT_MAX_BYTES` and :data:`DIFF_INPUT_MAX_LINES` lines
of each in near-linear time (:mod:`celery_parselog.linediff`) and shows at most
:data:`DIFF_MAX_LINES` lines. The comparison's ``notes`` say what was left out.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.template.defaultfilters import filesizeformat

from celery_parselog.kinds import (
    KindCounter,
    KindSummary,
    compare_kinds,
    parse_level_and_logger,
)
from celery_parselog.linediff import diff_lines
from celery_parselog.normalizing import Normalizer, normalize_line
from celery_parselog.reading import (
    BoundedStream,
    LogLocation,
    capped,
    decompressed_chunks,
    open_raw,
    split_lines,
)

if TYPE_CHECKING:
    from celery_parselog.models import TaskLog

__all__ = [
    "DIFF_INPUT_MAX_LINES",
    "DIFF_MAX_LINES",
    "LINE_MAX_BYTES",
    "SUMMARY_MAX_BYTES",
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
# Twice the default cap on a log's text (CELERY_PARSELOG_MAX_BYTES), so every log
# written with the defaults is summarized whole.
SUMMARY_MAX_BYTES = 256 * 1024 * 1024
DIFF_INPUT_MAX_LINES = 100_000
DIFF_MAX_LINES = 5000
LINE_MAX_BYTES = 2000
NO_LOGGER = "(no logger)"
NOT_GROUPED = "(not grouped)"


def count_by_logger(lines: Iterable[str]) -> dict[str, int]:
    """Lines per logger name, most first; lines without a header count under ``(no logger)``."""
    counts: Counter[str] = Counter()
    for line in lines:
        parsed = parse_level_and_logger(line)
        counts[parsed[1] if parsed else NO_LOGGER] += 1
    return dict(counts.most_common())


@dataclass(frozen=True)
class LogText:
    """One log read once: up to :data:`TEXT_MAX_BYTES` of its text as lines, for the diff,
    and every line's template up to :data:`SUMMARY_MAX_BYTES`."""

    lines: list[str]
    text_bytes: int
    truncated: bool
    error: str = ""
    kinds: KindCounter | None = None
    summary_truncated: bool = False


def read_log_text(
    location: LogLocation,
    *,
    max_bytes: int = TEXT_MAX_BYTES,
    summary_bytes: int = SUMMARY_MAX_BYTES,
    normalizer: Normalizer | None = None,
) -> LogText:
    """Read a stored log once; a read error is reported, not raised."""
    summary_bytes = max(summary_bytes, max_bytes)
    kinds = KindCounter(normalizer or Normalizer())
    kept: list[bytes] = []
    kept_bytes = total = 0
    try:
        with open_raw(location) as raw:
            # The stored bytes are bounded too: a plain log's are its text, and a
            # gzip log is smaller than its text (the cap is generous for the rare
            # incompressible one).
            stream = BoundedStream(raw, summary_bytes)
            for chunk in capped(decompressed_chunks(stream), summary_bytes, stream):
                kinds.feed(chunk)
                total += len(chunk)
                if kept_bytes < max_bytes:
                    kept.append(chunk[: max_bytes - kept_bytes])
                    kept_bytes += len(kept[-1])
            kinds.finish()
    except FileNotFoundError:
        return LogText([], 0, False, "the log is not in the storage")
    except Exception as error:  # noqa: BLE001 - shown beside the other run, not raised
        return LogText([], 0, False, f"the log could not be read: {type(error).__name__}: {error}")
    lines = [line.decode("utf-8", "replace") for line in split_lines(kept, max_line=LINE_MAX_BYTES)]
    text_bytes = sum(len(line.encode("utf-8")) + 1 for line in lines)
    return LogText(
        lines,
        text_bytes,
        total > kept_bytes or stream.exhausted,
        kinds=kinds,
        summary_truncated=stream.exhausted,
    )


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
    lines_summarized: int
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
    kinds: KindSummary = field(default_factory=lambda: KindSummary([]))
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
    max_input_lines: int = DIFF_INPUT_MAX_LINES,
    summary_bytes: int = SUMMARY_MAX_BYTES,
) -> Comparison:
    """Compare run ``a`` (usually the earlier) with run ``b``."""
    normalizer = Normalizer([a.task_id, b.task_id])
    texts = [_text_of(row, max_bytes, summary_bytes, normalizer) for row in (a, b)]
    summaries = [_summary("A", a, texts[0]), _summary("B", b, texts[1])]
    notes = _notes(summaries, texts, max_bytes, summary_bytes)
    kinds = compare_kinds(*(text.kinds if text else None for text in texts))
    comparison = Comparison(
        a=summaries[0],
        b=summaries[1],
        rows=_general_rows(*summaries),
        level_rows=_count_rows(summaries[0].levels, summaries[1].levels, by_level=True),
        logger_rows=_count_rows(summaries[0].loggers, summaries[1].loggers),
        diff=[],
        kinds=kinds,
        notes=notes,
    )
    if any(text is None or text.error for text in texts):
        notes.append("No diff: both logs must be stored and readable.")
        return comparison
    a_text, b_text = (text.lines if text else [] for text in texts)
    for label, lines in (("A", a_text), ("B", b_text)):
        if len(lines) > max_input_lines:
            notes.append(
                f"{label}: the diff compares the first {max_input_lines:,} of the "
                f"{len(lines):,} lines read; the other {len(lines) - max_input_lines:,} "
                "are left out of it."
            )
    a_lines = [normalizer.normalize(line) for line in a_text[:max_input_lines]]
    b_lines = [normalizer.normalize(line) for line in b_text[:max_input_lines]]
    comparison.identical = a_lines == b_lines
    if comparison.identical:
        return comparison
    found = diff_lines(a_lines, b_lines)
    if found.unaligned:
        notes.append(
            f"{found.unaligned:,} lines in long stretches with nothing in common are shown "
            "as removed and added, without aligning them line by line."
        )
    comparison.diff = [_diff_name(a, "--- A"), _diff_name(b, "+++ B")]
    hunks = found.unified(a_lines, b_lines, context=context)
    for line in hunks:
        if len(comparison.diff) >= max_diff_lines:
            comparison.diff_cut = True
            left_out = 1 + sum(1 for _ in hunks)
            notes.append(
                f"The diff is cut after {max_diff_lines:,} lines; "
                f"{left_out:,} more diff lines are not shown."
            )
            break
        comparison.diff.append(line)
    return comparison


def _text_of(
    row: TaskLog, max_bytes: int, summary_bytes: int, normalizer: Normalizer
) -> LogText | None:
    if not row.is_stored:
        return None
    return read_log_text(
        LogLocation(row.storage, row.key),
        max_bytes=max_bytes,
        summary_bytes=summary_bytes,
        normalizer=normalizer,
    )


def _summary(label: str, row: TaskLog, text: LogText | None) -> RunSummary:
    lines = text.lines if text is not None else []
    kinds = text.kinds if text is not None else None
    error = f"the log is not stored (upload {row.upload_status})" if text is None else text.error
    levels = {str(k): int(v) for k, v in (row.counts or {}).items()}
    if not levels and kinds is not None:
        levels = kinds.levels()
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
        loggers=kinds.loggers(no_logger=NO_LOGGER, not_grouped=NOT_GROUPED) if kinds else {},
        lines_read=len(lines),
        lines_summarized=kinds.lines if kinds else 0,
        text_bytes=text.text_bytes if text else 0,
        text_truncated=text.truncated if text else False,
        text_error=error,
    )


def _notes(
    summaries: Sequence[RunSummary],
    texts: Sequence[LogText | None],
    max_bytes: int,
    summary_bytes: int,
) -> list[str]:
    notes = []
    for summary, text in zip(summaries, texts, strict=True):
        if summary.text_error:
            notes.append(f"{summary.label}: {summary.text_error}.")
            continue
        if summary.text_truncated:
            notes.append(
                f"{summary.label}: the diff reads only the first {filesizeformat(max_bytes)} "
                f"of the log's text ({summary.lines_read:,} lines); the rest is left out of it."
            )
        if text is not None and text.summary_truncated:
            notes.append(
                f"{summary.label}: the kinds of message and the lines by logger count only "
                f"the first {filesizeformat(summary_bytes)} of the log's text "
                f"({summary.lines_summarized:,} lines)."
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
            lambda s: filesizeformat(s.stored_bytes) if s.stored_bytes is not None else None,
        ),
        row("Lines", lambda s: f"{s.lines_summarized:,}"),
        row(
            "Lines in the diff",
            lambda s: f"{s.lines_read:,}" + (" (cut)" if s.text_truncated else ""),
        ),
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
