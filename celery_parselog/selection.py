"""Which tasks are captured: exact names and glob patterns, decided once per task name."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

__all__ = ["TaskSelector", "pattern_problem"]

_GLOB_CHARS = frozenset("*?[")


def pattern_problem(pattern: object) -> str | None:
    """Say what is wrong with one entry of ``CELERY_PARSELOG_TASKS``, or ``None`` if it is usable.

    ``fnmatch`` accepts any string, so mistakes such as an unclosed ``[`` or stray
    spaces would otherwise match nothing in silence.
    """
    if not isinstance(pattern, str):
        return f"{pattern!r} is not a string"
    if not pattern:
        return "an empty pattern matches no task"
    if pattern != pattern.strip() or any(ch.isspace() for ch in pattern):
        return f"{pattern!r} contains whitespace, which no task name has"
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                return f"{pattern!r} opens a [ inside another"
            depth = 1
        elif ch == "]" and depth:
            depth = 0
    if depth:
        return f"{pattern!r} has a [ that is never closed"
    return None


class TaskSelector:
    """Answers "is this task captured?" with one dictionary look-up after the first ask.

    Task names are few and fixed for the life of a worker, so the answer for each
    name is cached; the patterns are compiled into one regular expression.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        exact: set[str] = set()
        globs: list[str] = []
        for pattern in patterns:
            if _GLOB_CHARS.intersection(pattern):
                globs.append(pattern)
            else:
                exact.add(pattern)
        self._exact = frozenset(exact)
        self._glob = (
            re.compile("|".join(fnmatch.translate(glob) for glob in globs)) if globs else None
        )
        self._decided: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._exact) or self._glob is not None

    def matches(self, task_name: str) -> bool:
        decided = self._decided.get(task_name)
        if decided is None:
            decided = task_name in self._exact or bool(
                self._glob is not None and self._glob.match(task_name)
            )
            self._decided[task_name] = decided
        return decided
