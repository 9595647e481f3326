"""What a log line is, as far as reading it goes: its record's level, and whether it is
part of a traceback. The admin highlights and filters lines by this.

Lines are judged one after another, because a traceback's lines carry no level of
their own: they belong to the record above them. A level is found as a level name
standing alone near the start of the line (the default format, most custom ones) or
as the ``level`` field of a JSON line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LEVELS", "LineClassifier", "LineKind", "level_number"]

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
# Only the start of a line is searched, so a message that mentions "ERROR" later on
# does not make its line an error.
_HEAD = 120
_LEVEL = re.compile(r"(?:^|[\s\[(|])(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)(?=[\s\]):|]|$)")
_JSON_LEVEL = re.compile(r'"level"\s*:\s*"([A-Za-z]+)"')
_TRACEBACK_START = "Traceback (most recent call last):"
_CHAINED = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)


def level_number(name: str) -> int | None:
    """The number of a level name (``"warn"`` is WARNING), or ``None`` if it is none."""
    upper = name.upper()
    return LEVELS.get(_ALIASES.get(upper, upper))


@dataclass(frozen=True)
class LineKind:
    """A line's record level (``None`` before the first record) and its highlight.

    ``css`` is ``"error"``, ``"warning"``, ``"traceback"`` or ``""``.
    """

    level: int | None
    css: str


class LineClassifier:
    """Judges lines in order; one instance per pass over a log."""

    def __init__(self) -> None:
        self._level: int | None = None
        self._in_traceback = False

    def classify(self, line: str) -> LineKind:
        if line.startswith(_TRACEBACK_START) or line.startswith(_CHAINED):
            self._in_traceback = True
            return LineKind(self._level, "traceback")
        if self._in_traceback:
            if not line or line[0].isspace():
                return LineKind(self._level, "traceback")
            # The exception's own line ends the traceback, unless a new record starts.
            self._in_traceback = False
            if self._own_level(line) is None:
                return LineKind(self._level, "traceback")
        own = self._own_level(line)
        if own is not None:
            self._level = own
        level = self._level
        if level is not None and level >= LEVELS["ERROR"]:
            css = "error"
        elif level is not None and level >= LEVELS["WARNING"]:
            css = "warning"
        else:
            css = ""
        return LineKind(level, css)

    @staticmethod
    def _own_level(line: str) -> int | None:
        head = line[:_HEAD]
        found = _JSON_LEVEL.search(line) if head.startswith("{") else _LEVEL.search(head)
        return level_number(found.group(1)) if found else None
