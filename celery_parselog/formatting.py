"""How one record becomes one line of a run's log: a logging format string, or JSON lines.

Times are UTC with milliseconds, so logs of runs on different hosts compare cleanly.
Records are never modified: other handlers see them exactly as before.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "DEFAULT_NOTE_FORMAT",
    "INCOMPLETE_NOTE",
    "INTERRUPTED_NOTE",
    "JsonLinesFormatter",
    "LineFormatter",
    "TextFormatter",
    "build_formatter",
    "cut_note",
    "format_problem",
    "unformattable_note",
]

# The package's own lines in a run's log. Each is written through the run's formatter
# (:meth:`LineFormatter.note`), so a JSON-lines log stays JSON on every line.
INCOMPLETE_NOTE = "log incomplete: worker lost"
INTERRUPTED_NOTE = "log incomplete: run interrupted"
NOTE_LOGGER = "celery_parselog"
# The format recovery writes its notes in when it is not told the logs' own.
DEFAULT_NOTE_FORMAT = "%(message)s"


def cut_note(records: int | None = None, size: int | None = None, cap: int | None = None) -> str:
    """Where a capped log left records out; the counts are known to the run, not to recovery."""
    if records is None:
        return "records left out here: the log passed CELERY_PARSELOG_MAX_BYTES"
    return (
        f"{records} records ({size} bytes) left out here: the log passed "
        f"CELERY_PARSELOG_MAX_BYTES ({cap} bytes)"
    )


def unformattable_note(record: logging.LogRecord, error: BaseException) -> str:
    return (
        f"celery-parselog could not format a record of logger {record.name!r} "
        f"at level {record.levelname}: {type(error).__name__}"
    )


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    logging.makeLogRecord({}).__dict__.keys() | {"message", "asctime", "taskName"}
)
_TASK_FIELDS = ("%(task_id)", "%(task_name)")


class LineFormatter(logging.Formatter):
    """A formatter of a run's log, which also writes the package's own notes in its format."""

    def note(self, text: str) -> str:
        raise NotImplementedError


class TextFormatter(LineFormatter):
    """A ``logging.Formatter`` in UTC that also knows ``%(task_id)s`` and ``%(task_name)s``."""

    converter = staticmethod(time.gmtime)
    default_msec_format = "%s.%03dZ"

    def __init__(self, fmt: str, *, task_id: str, task_name: str) -> None:
        super().__init__(fmt, datefmt=None)
        self.default_time_format = "%Y-%m-%dT%H:%M:%S"
        self._task_fields = (
            {"task_id": task_id, "task_name": task_name}
            if any(field in fmt for field in _TASK_FIELDS)
            else None
        )

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        if self._task_fields is None:
            return super().formatMessage(record)
        # Format from a merged mapping rather than setting attributes on a record
        # that other handlers share.
        return self._fmt % {**record.__dict__, **self._task_fields}  # type: ignore[operator]

    def note(self, text: str) -> str:
        return f"-- {text} --"


class JsonLinesFormatter(LineFormatter):
    """One JSON object per record: time, level, logger, message, task id, exception and extras."""

    def __init__(self, *, task_id: str, task_name: str) -> None:
        super().__init__()
        self._task_id = task_id
        self._task_name = task_name

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "task_id": self._task_id,
            "task_name": self._task_name,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_text"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        extra = {
            name: value
            for name, value in record.__dict__.items()
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_")
        }
        if extra:
            line["extra"] = extra
        try:
            return json.dumps(line, default=_json_fallback, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            # Extras JSON cannot hold as they are (non-string keys, cycles, NaN):
            # keep the line, with each such value written as its repr.
            line["extra"] = {str(name): _json_fallback(value) for name, value in extra.items()}
            return json.dumps(line, ensure_ascii=False)

    def note(self, text: str) -> str:
        return json.dumps(
            {
                "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "level": "NOTE",
                "logger": NOTE_LOGGER,
                "message": text,
                "task_id": self._task_id,
                "task_name": self._task_name,
            },
            ensure_ascii=False,
        )


def _json_fallback(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not lose the line
        return f"<unrepresentable {type(value).__name__}>"


def build_formatter(fmt: str, *, task_id: str, task_name: str) -> LineFormatter:
    """The formatter ``CELERY_PARSELOG_FORMAT`` asks for."""
    if fmt == "json":
        return JsonLinesFormatter(task_id=task_id, task_name=task_name)
    return TextFormatter(fmt, task_id=task_id, task_name=task_name)


def format_problem(fmt: str) -> str | None:
    """Say why a format string cannot format records, or ``None`` if it can."""
    if fmt == "json":
        return None
    record = logging.makeLogRecord({"msg": "probe", "levelno": logging.INFO, "levelname": "INFO"})
    try:
        TextFormatter(fmt, task_id="probe", task_name="probe").format(record)
    except (ValueError, KeyError, TypeError) as error:
        return f"{fmt!r} cannot format a record: {error!r}"
    return None
