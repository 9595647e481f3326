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

__all__ = ["BYTE_SHAPES", "Normalizer", "apply_plan", "normalize_line", "shape_of"]

# The translation table to a line's shape.
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
    """``text`` with every ASCII digit turned into ``0``: lines of one shape normalize alike.

    Done on the UTF-8 bytes, where ``translate`` is a plain table look-up (on ``str``
    it costs about thirty times more); digits are single bytes, so every character
    keeps its position.
    """
    return (
        text.encode("utf-8", "surrogatepass")
        .translate(BYTE_SHAPES)
        .decode("utf-8", "surrogatepass")
    )


def _has_duration(shape: str) -> bool:
    return (
        "0s" in shape
        or "0 s" in shape
        or "0ms" in shape
        or "0 ms" in shape
        or "0us" in shape
        or "0µs" in shape
        or "0ns" in shape
        or "0 us" in shape
        or "0 µs" in shape
        or "0 ns" in shape
    )


def _candidates(pattern: re.Pattern[str], masked: str) -> list[int] | None:
    """Where ``pattern`` may start in ``masked``, found with ``str.find`` (far cheaper
    than a regular expression's search); ``None`` means search everywhere."""
    found: list[int] = []
    if pattern is _TIMESTAMP:
        at = masked.find("0000-00-00")
        while at >= 0:
            found.append(at)
            at = masked.find("0000-00-00", at + 10)
    elif pattern is _CLOCK:
        at = masked.find(":00:00")
        while at >= 0:
            found += [at - 2, at - 1] if at >= 2 else [at - 1] if at else []
            at = masked.find(":00:00", at + 6)
    elif pattern is _UUID:
        at = masked.find("-", 8)
        while at >= 0:
            if masked[at + 5 : at + 6] == "-" and masked[at + 10 : at + 11] == "-":
                found.append(at - 8)
            at = masked.find("-", at + 1)
    elif pattern is _ADDRESS:
        at = masked.find("0x")
        while at >= 0:
            found.append(at)
            at = masked.find("0x", at + 2)
    elif _has_duration(masked):
        return None
    return found


def _plan(shape: str) -> Plan:
    """Where the rules replace what, in a line of this shape (positions of the original).

    Each rule is tried only where :func:`_candidates` says it can match, since most
    lines hold a timestamp and little else that varies.
    """
    spans: list[tuple[int, int, str]] = []
    masked = shape
    for pattern, placeholder, group in _RULES:
        starts = _candidates(pattern, masked)
        if starts == []:
            continue
        if starts is None:
            matches = list(pattern.finditer(masked))
        else:
            matches = []
            for start in starts:
                if matches and start < matches[-1].end():
                    continue
                match = pattern.match(masked, start)
                if match is not None:
                    matches.append(match)
        if not matches:
            continue
        pieces, last = [], 0
        for match in matches:
            start, end = (match.end(group) if group else match.start()), match.end()
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
        plan = self.plan(shape_of(line))
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
