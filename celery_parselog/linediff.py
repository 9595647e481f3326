"""A unified diff of two long line sequences in near-linear time.

``difflib`` compares every line with every other in the worst case: two logs of
64,000 lines took about a minute. Here the work is split the way ``git diff
--patience`` splits it: the common start and end are set aside, then lines that
occur exactly once in each side are matched in order (a longest increasing
subsequence, ``O(n log n)``) and serve as anchors; only the stretches between anchors
go to ``difflib``, and a stretch longer than :data:`GAP_MAX_LINES` on both sides that
has no anchor of its own is shown as removed and added rather than aligned line by
line. The diff is then still a correct diff (applying it turns A into B); it may just
be longer than the shortest one. :attr:`LineDiff.unaligned` says how many lines were
shown that way.
"""

from __future__ import annotations

import difflib
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["GAP_MAX_LINES", "LineDiff", "diff_lines"]

GAP_MAX_LINES = 2000

Opcode = tuple[Literal["replace", "delete", "insert", "equal"], int, int, int, int]


@dataclass
class LineDiff:
    """The opcodes of a diff, and how many lines were left unaligned."""

    opcodes: list[Opcode]
    unaligned: int = 0

    def unified(self, a: Sequence[str], b: Sequence[str], *, context: int) -> Iterator[str]:
        """The hunks as ``difflib.unified_diff`` writes them, without the two file lines."""
        matcher = _Fixed(self.opcodes)
        for group in matcher.get_grouped_opcodes(context):
            first, last = group[0], group[-1]
            yield f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@"
            for tag, i1, i2, j1, j2 in group:
                if tag == "equal":
                    yield from (" " + line for line in a[i1:i2])
                    continue
                if tag in ("replace", "delete"):
                    yield from ("-" + line for line in a[i1:i2])
                if tag in ("replace", "insert"):
                    yield from ("+" + line for line in b[j1:j2])


class _Fixed(difflib.SequenceMatcher[str]):
    """difflib's grouping of opcodes into hunks, over opcodes computed here."""

    def __init__(self, opcodes: list[Opcode]) -> None:
        super().__init__(None, [], [])
        self._fixed = opcodes

    def get_opcodes(self) -> list[Opcode]:
        return self._fixed


def _range(start: int, stop: int) -> str:
    """A unified diff's range, as difflib writes it."""
    length = stop - start
    beginning = start + 1 if length else start
    return f"{beginning}" if length == 1 else f"{beginning},{length}"


def diff_lines(a: Sequence[str], b: Sequence[str]) -> LineDiff:
    """The diff of ``a`` and ``b``, in about linear time whatever their content."""
    differ = _Differ(a, b)
    differ.diff(0, len(a), 0, len(b))
    return LineDiff(_merged(differ.opcodes), differ.unaligned)


class _Differ:
    def __init__(self, a: Sequence[str], b: Sequence[str]) -> None:
        self.a, self.b = a, b
        self.opcodes: list[Opcode] = []
        self.unaligned = 0

    def diff(self, i1: int, i2: int, j1: int, j2: int) -> None:
        a, b = self.a, self.b
        # The common start and end.
        start = 0
        while i1 + start < i2 and j1 + start < j2 and a[i1 + start] == b[j1 + start]:
            start += 1
        if start:
            self.opcodes.append(("equal", i1, i1 + start, j1, j1 + start))
            i1, j1 = i1 + start, j1 + start
        end = 0
        while i1 < i2 - end and j1 < j2 - end and a[i2 - end - 1] == b[j2 - end - 1]:
            end += 1
        self.middle(i1, i2 - end, j1, j2 - end)
        if end:
            self.opcodes.append(("equal", i2 - end, i2, j2 - end, j2))

    def middle(self, i1: int, i2: int, j1: int, j2: int) -> None:
        if i1 == i2 and j1 == j2:
            return
        if i1 == i2:
            self.opcodes.append(("insert", i1, i1, j1, j2))
            return
        if j1 == j2:
            self.opcodes.append(("delete", i1, i2, j1, j1))
            return
        if i2 - i1 <= GAP_MAX_LINES and j2 - j1 <= GAP_MAX_LINES:
            matcher = difflib.SequenceMatcher(None, self.a[i1:i2], self.b[j1:j2], autojunk=False)
            self.opcodes += [
                (tag, i1 + x1, i1 + x2, j1 + y1, j1 + y2)
                for tag, x1, x2, y1, y2 in matcher.get_opcodes()
            ]
            return
        anchors = _anchors(self.a[i1:i2], self.b[j1:j2])
        if not anchors:
            self.opcodes.append(("replace", i1, i2, j1, j2))
            self.unaligned += (i2 - i1) + (j2 - j1)
            return
        at_i, at_j = i1, j1
        for i, j in anchors:
            self.diff(at_i, i1 + i, at_j, j1 + j)
            self.opcodes.append(("equal", i1 + i, i1 + i + 1, j1 + j, j1 + j + 1))
            at_i, at_j = i1 + i + 1, j1 + j + 1
        self.diff(at_i, i2, at_j, j2)


def _anchors(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int]]:
    """Lines found once in each side, matched in order: the longest increasing run."""
    count_a = Counter(a)
    count_b = Counter(b)
    where_b = {line: j for j, line in enumerate(b) if count_b[line] == 1}
    pairs = [
        (i, where_b[line]) for i, line in enumerate(a) if count_a[line] == 1 and line in where_b
    ]
    # Longest increasing subsequence of the b positions (patience sorting).
    tails: list[int] = []
    tail_index: list[int] = []
    previous: list[int] = [-1] * len(pairs)
    for index, (_, j) in enumerate(pairs):
        spot = bisect_left(tails, j)
        if spot == len(tails):
            tails.append(j)
            tail_index.append(index)
        else:
            tails[spot] = j
            tail_index[spot] = index
        previous[index] = tail_index[spot - 1] if spot else -1
    chain: list[tuple[int, int]] = []
    index = tail_index[-1] if tail_index else -1
    while index >= 0:
        chain.append(pairs[index])
        index = previous[index]
    chain.reverse()
    return chain


def _merged(opcodes: list[Opcode]) -> list[Opcode]:
    """Neighbouring opcodes of one kind joined, and empty ones dropped, as difflib gives them."""
    merged: list[Opcode] = []
    for code in opcodes:
        tag, i1, i2, j1, j2 = code
        if i1 == i2 and j1 == j2:
            continue
        if merged and merged[-1][0] == tag and tag == "equal":
            previous = merged[-1]
            merged[-1] = (tag, previous[1], i2, previous[3], j2)
            continue
        merged.append(code)
    return merged
