"""Replacing what changes on every run (times, ids, durations, addresses) by placeholders.

Two runs of one parse differ in their times, task ids and durations on nearly every
line, which would bury the differences that matter, so lines are normalized before
they are compared or grouped.

**Why a cache keyed by the line's shape.** Python's regular expressions cost 10 to
40 µs per log line for these rules, which is seconds for a log of 100,000 lines. None
of the rules looks at the value of a digit, only at where digits are, so two lines
that differ only in their digits are normalized at the same places. The line's
*shape* (every ASCII digit turned into ``0``, a C-speed ``str.translate``) is the
cache key, and the places found once are reused for every line of that shape.
A log of a million lines usually has a few thousand shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["SHAPES", "Normalizer", "normalize_line", "shape_of"]

# Translation tables to a line's shape, for text and for bytes.
SHAPES = str.maketrans("123456789", "000000000")
BYTE_SHAPES = bytes.maketrans(b"123456789", b"000000000")

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

# In order: a later rule never sees what an earlier one replaced. The number is the
# group whose end starts the replaced part (0: the whole match).
_RULES: tuple[tuple[re.Pattern[str], str, int], ...] = (
    (_TIMESTAMP, "<time>", 0),
    (_CLOCK, "<time>", 0),
    (_UUID, "<uuid>", 0),
    (_ADDRESS, "<addr>", 0),
    (_WORDED_DURATION, "<duration>", 2),
    (_DECIMAL_DURATION, "<duration>", 0),
)
_CACHE_MAX = 50_000

Plan = tuple[tuple[int, int, str], ...]


def shape_of(text: str) -> str:
    """``text`` with every ASCII digit turned into ``0``: lines of one shape normalize alike."""
    return text.translate(SHAPES)


def _plan(shape: str) -> Plan:
    """Where the rules replace what, in a line of this shape (positions of the original)."""
    spans: list[tuple[int, int, str]] = []
    masked = shape
    for pattern, placeholder, group in _RULES:
        found = [
            (match.end(group) if group else match.start(), match.end())
            for match in pattern.finditer(masked)
        ]
        if not found:
            continue
        pieces, last = [], 0
        for start, end in found:
            spans.append((start, end, placeholder))
            # Same-length mask: the positions stay those of the original line, and like
            # a placeholder it starts and ends with a character that is not a word's.
            pieces += [masked[last:start], "<" + "\x00" * (end - start - 2) + ">"]
            last = end
        pieces.append(masked[last:])
        masked = "".join(pieces)
    spans.sort()
    return tuple(spans)


class Normalizer:
    """Normalizes lines of runs whose task ids are ``task_ids``, remembering line shapes.

    One instance serves both logs of a comparison, so the shapes they share are worked
    out once. The cache is bounded (:data:`_CACHE_MAX` shapes); past it, lines are
    still normalized, only without remembering.
    """

    def __init__(self, task_ids: Iterable[str] = ()) -> None:
        self.task_ids = tuple(sorted((t for t in task_ids if t), key=len, reverse=True))
        self._plans: dict[str, Plan] = {}

    def without_task_ids(self, line: str) -> str:
        for task_id in self.task_ids:
            if task_id in line:
                line = line.replace(task_id, "<task-id>")
        return line

    def plan(self, shape: str) -> Plan:
        """The replacements for a line of ``shape`` (task ids already replaced)."""
        plan = self._plans.get(shape)
        if plan is None:
            plan = _plan(shape)
            if len(self._plans) < _CACHE_MAX:
                self._plans[shape] = plan
        return plan

    def normalize(self, line: str) -> str:
        """``line`` with the runs' task ids, times, UUIDs, durations and addresses replaced."""
        line = self.without_task_ids(line)
        plan = self.plan(line.translate(SHAPES))
        if any(p == "<addr>" and line[s : s + 2] != "0x" for s, _, p in plan):
            # The one rule that reads a digit's value: ``0x`` starts an address, ``2x`` not.
            plan = _plan(line)
        return apply_plan(line, plan)


def apply_plan(line: str, plan: Plan) -> str:
    """``line`` with ``plan``'s replacements made."""
    if not plan:
        return line
    pieces, last = [], 0
    for start, end, placeholder in plan:
        pieces += [line[last:start], placeholder]
        last = end
    pieces.append(line[last:])
    return "".join(pieces)


def normalize_line(line: str, task_ids: Iterable[str] = ()) -> str:
    """``line`` with its volatile parts replaced by placeholders, so equal runs compare equal.

    ``task_ids`` (the compared runs' ids, which need not be UUIDs) become
    ``<task-id>``; timestamps ``<time>``; other UUIDs ``<uuid>``; durations
    ``<duration>``; memory addresses ``<addr>``.
    """
    return Normalizer(task_ids).normalize(line)
