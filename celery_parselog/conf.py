"""The settings of celery-parselog: every key, its default and its meaning, declared once.

Settings are Django settings prefixed ``CELERY_PARSELOG_``. They are read on access,
never at import time, so ``override_settings`` works and a project may set them late.
Each property validates its value and raises :class:`SettingError` (an
``ImproperlyConfigured``) naming the key and what it accepts; the system checks in
:mod:`celery_parselog.checks` turn those errors into check messages with ids.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from celery_parselog.redaction import BUILTIN_NAMES, DEFAULT_REDACT, entry_problem

__all__ = [
    "DEFAULT_FORMAT",
    "JSON_FORMAT",
    "PREFIX",
    "SPECS",
    "ParselogSettings",
    "SettingError",
    "SettingSpec",
    "parselog_settings",
    "settings_table",
]

PREFIX = "CELERY_PARSELOG_"
JSON_FORMAT = "json"
DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_KEY = "parselog/{task_name}/{started:%Y/%m/%d}/{task_id}-{attempt}.log"
_MIN_MAX_BYTES = 64 * 1024
_DOTTED_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its name without the prefix, its default and a line of documentation."""

    name: str
    default: Any
    doc: str

    @property
    def key(self) -> str:
        return PREFIX + self.name


# The one place where defaults live. The README's settings table is tested against it.
SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "ENABLED",
        False,
        "Capture in every worker of the project. `celery worker --parselog` / "
        "`--no-parselog` overrides it for one worker.",
    ),
    SettingSpec(
        "TASKS",
        [],
        "Task names or glob patterns (`proj.parsers.*`) whose runs are captured. "
        "Empty captures nothing.",
    ),
    SettingSpec(
        "LEVEL",
        "INFO",
        "Lowest level written to a run's log: a level name or number.",
    ),
    SettingSpec(
        "LOGGERS",
        ["*"],
        "Which loggers feed a run's log. `*` is every logger, non-propagating ones "
        "included; a name adds that logger and its children; `-name` leaves them out.",
    ),
    SettingSpec(
        "FORMAT",
        DEFAULT_FORMAT,
        "A `logging` format string (`%(task_id)s` and `%(task_name)s` may be used), "
        'or `"json"` for JSON lines. Times are UTC.',
    ),
    SettingSpec(
        "COMPRESS",
        True,
        "Gzip the log while it is written and add `.gz` to its key. `True` means "
        "level 6; a number from 1 to 9 picks the level.",
    ),
    SettingSpec(
        "MAX_BYTES",
        128 * 1024 * 1024,
        "Cap on a run's log, in bytes of text. Past it the log keeps its first and last "
        "parts, with a line saying how many records and bytes were left out between. "
        "`0` means no cap.",
    ),
    SettingSpec(
        "REDACT",
        list(DEFAULT_REDACT),
        "What is masked in each record's final text before it reaches the disk: built-in "
        "names (`ssn`, `email`, `phone`, `card`, `aws_key`, `jwt`, `auth_header`, "
        "`url_password`, `secrets`; opt-in: `identifiers`) or regular expressions. Matches become "
        "`[REDACTED:<name>]`. `[]` turns redaction off.",
    ),
    SettingSpec(
        "STORAGE",
        "default",
        "Alias in Django's `STORAGES` that receives the logs.",
    ),
    SettingSpec(
        "KEY",
        DEFAULT_KEY,
        "Template of the stored name, over `task_name`, `task_id`, `attempt`, "
        "`root_id`, `started` and the task's parameters; or the dotted path of a "
        "function that takes a `KeyContext` and returns the name.",
    ),
    SettingSpec(
        "SPOOL_DIR",
        None,
        "Folder for the files being written; `None` means `celery-parselog` in the "
        "system's temporary folder.",
    ),
    SettingSpec(
        "CHECKPOINT_SECONDS",
        0,
        "Upload what a running task logged so far every this many seconds, under its "
        "final key, so losing the machine loses at most that much; `0` turns it off.",
    ),
    SettingSpec(
        "UPLOAD_ATTEMPTS",
        3,
        "How many times an upload is tried before the log is left in the spool folder.",
    ),
    SettingSpec(
        "RECOVERY_INTERVAL",
        60,
        "Seconds between a worker's sweeps of its spool folder for logs left by failed "
        "uploads or killed children; `0` sweeps only when the worker starts.",
    ),
    SettingSpec(
        "UPLOAD_BACKOFF",
        0.5,
        "Seconds to wait before the second upload attempt; doubled for each further one.",
    ),
    SettingSpec(
        "RECORDS",
        True,
        "Keep a `TaskLog` row per captured run in the database (admin pages, comparing "
        "runs, the `log_uploaded` signal). `False` writes no rows.",
    ),
    SettingSpec(
        "SUBJECT",
        None,
        "Template over the key's fields naming what a run worked on, such as "
        '`"{data_file_id}"`; runs with one subject are compared with each other. '
        "`None` or empty leaves the subject empty.",
    ),
    SettingSpec(
        "KEEP_ARGS",
        True,
        "Keep the task's args and kwargs on its `TaskLog` row (values JSON cannot hold "
        "are kept as their `repr`).",
    ),
    SettingSpec(
        "DOWNLOAD_EXPIRY",
        300,
        "Seconds an admin download link to a log on S3 (a presigned URL) stays valid.",
    ),
    SettingSpec(
        "PREVIEW_LINES",
        50,
        "How many first and last lines of a log the admin's detail page shows.",
    ),
)

_SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


def _literal(value: Any) -> str:
    """A default as it would be written in a settings module, strings in double quotes."""
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    return repr(value)


def settings_table() -> str:
    """The README's settings table, in Markdown, made from :data:`SPECS`."""
    rows = ["| Setting | Default | Meaning |", "|---|---|---|"]
    rows.extend(f"| `{spec.key}` | `{_literal(spec.default)}` | {spec.doc} |" for spec in SPECS)
    return "\n".join(rows)


class SettingError(ImproperlyConfigured):
    """A setting with a value celery-parselog cannot use.

    Carries the system check id and a hint, so the checks can report every bad
    setting the same way without repeating the validation.
    """

    def __init__(self, name: str, message: str, *, hint: str, check_id: str) -> None:
        self.key = PREFIX + name
        self.message = f"{self.key}: {message}"
        self.hint = hint
        self.check_id = check_id
        super().__init__(f"{self.message} ({hint})")


def _type_error(name: str, value: object, accepted: str) -> SettingError:
    return SettingError(
        name,
        f"{value!r} is not {accepted}.",
        hint=f"Set {PREFIX}{name} to {accepted}.",
        check_id="celery_parselog.E008",
    )


class ParselogSettings:
    """Typed, validated access to the ``CELERY_PARSELOG_*`` settings, read on each access."""

    def _value(self, name: str) -> Any:
        spec = _SPECS_BY_NAME[name]
        return getattr(settings, spec.key, spec.default)

    @property
    def enabled(self) -> bool:
        value = self._value("ENABLED")
        if not isinstance(value, bool):
            raise _type_error("ENABLED", value, "True or False")
        return value

    @property
    def tasks(self) -> tuple[str, ...]:
        value = self._value("TASKS")
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _type_error("TASKS", value, "a list of task names or glob patterns")
        return tuple(value)

    @property
    def level(self) -> int:
        value = self._value("LEVEL")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            number = logging.getLevelName(value.upper())
            if isinstance(number, int):
                return number
        raise SettingError(
            "LEVEL",
            f"{value!r} is not a logging level.",
            hint="Use DEBUG, INFO, WARNING, ERROR, CRITICAL, or a non-negative number.",
            check_id="celery_parselog.E005",
        )

    @property
    def loggers(self) -> tuple[str, ...]:
        value = self._value("LOGGERS")
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v.strip() == v and v not in ("", "-") for v in value
        ):
            raise _type_error("LOGGERS", value, 'a list of logger names, "*" or "-name"')
        return tuple(value)

    @property
    def format(self) -> str:
        value = self._value("FORMAT")
        if not isinstance(value, str) or not value:
            raise _type_error("FORMAT", value, 'a logging format string or "json"')
        return value

    @property
    def compress_level(self) -> int:
        """The gzip level, or 0 when compression is off."""
        value = self._value("COMPRESS")
        if value is True:
            return 6
        if value is False:
            return 0
        if isinstance(value, int) and 1 <= value <= 9:
            return value
        raise _type_error("COMPRESS", value, "True, False or a gzip level from 1 to 9")

    @property
    def max_bytes(self) -> int:
        value = self._value("MAX_BYTES")
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or (value != 0 and value < _MIN_MAX_BYTES)
        ):
            raise _type_error(
                "MAX_BYTES", value, f"0 or a whole number of bytes ≥ {_MIN_MAX_BYTES}"
            )
        return value

    @property
    def redact(self) -> tuple[str, ...]:
        value = self._value("REDACT")
        if not isinstance(value, (list, tuple)):
            raise _type_error("REDACT", value, "a list of built-in names and regular expressions")
        for entry in value:
            if (problem := entry_problem(entry)) is not None:
                raise SettingError(
                    "REDACT",
                    f"{entry!r}: {problem}.",
                    hint=f"Use built-in names ({', '.join(BUILTIN_NAMES)}) or regular "
                    "expressions that match something.",
                    check_id="celery_parselog.E011",
                )
        return tuple(value)

    @property
    def storage(self) -> str:
        value = self._value("STORAGE")
        if not isinstance(value, str) or not value:
            raise _type_error("STORAGE", value, "the alias of a storage in STORAGES")
        return value

    @property
    def key(self) -> str | Callable[..., str]:
        """A key template, or the key function named by a dotted path (imported here)."""
        value = self._value("KEY")
        if callable(value):
            return value  # type: ignore[no-any-return]
        if not isinstance(value, str) or not value:
            raise _type_error("KEY", value, "a key template or the dotted path of a function")
        if "{" not in value and _DOTTED_PATH.match(value):
            try:
                function = import_string(value)
            except ImportError as error:
                raise SettingError(
                    "KEY",
                    f"cannot import the key function {value!r}: {error}.",
                    hint="Give the dotted path of a function that takes a KeyContext.",
                    check_id="celery_parselog.E003",
                ) from error
            if not callable(function):
                raise _type_error("KEY", value, "the dotted path of a callable")
            return function  # type: ignore[no-any-return]
        return value

    @property
    def spool_dir(self) -> Path:
        value = self._value("SPOOL_DIR")
        if value is None:
            return Path(tempfile.gettempdir()) / "celery-parselog"
        if not isinstance(value, (str, Path)) or not str(value):
            raise _type_error("SPOOL_DIR", value, "a folder path or None")
        return Path(value)

    @property
    def upload_attempts(self) -> int:
        value = self._value("UPLOAD_ATTEMPTS")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 20:
            raise _type_error("UPLOAD_ATTEMPTS", value, "a whole number from 1 to 20")
        return value

    @property
    def upload_backoff(self) -> float:
        value = self._value("UPLOAD_BACKOFF")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 60:
            raise _type_error("UPLOAD_BACKOFF", value, "a number of seconds from 0 to 60")
        return float(value)

    @property
    def checkpoint_seconds(self) -> float:
        value = self._value("CHECKPOINT_SECONDS")
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not 0 <= value <= 86400
        ):
            raise _type_error("CHECKPOINT_SECONDS", value, "a number of seconds from 0 to 86400")
        return float(value)

    @property
    def recovery_interval(self) -> float:
        value = self._value("RECOVERY_INTERVAL")
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not 0 <= value <= 86400
        ):
            raise _type_error("RECOVERY_INTERVAL", value, "a number of seconds from 0 to 86400")
        return float(value)

    @property
    def records(self) -> bool:
        value = self._value("RECORDS")
        if not isinstance(value, bool):
            raise _type_error("RECORDS", value, "True or False")
        return value

    @property
    def subject(self) -> str | None:
        """The subject template, or ``None`` when runs get no subject."""
        value = self._value("SUBJECT")
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise _type_error("SUBJECT", value, 'a template such as "{data_file_id}", or None')
        return value

    @property
    def keep_args(self) -> bool:
        value = self._value("KEEP_ARGS")
        if not isinstance(value, bool):
            raise _type_error("KEEP_ARGS", value, "True or False")
        return value

    @property
    def download_expiry(self) -> int:
        value = self._value("DOWNLOAD_EXPIRY")
        # S3 refuses presigned URLs valid for more than seven days.
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 604800:
            raise _type_error(
                "DOWNLOAD_EXPIRY", value, "a whole number of seconds from 1 to 604800"
            )
        return value

    @property
    def preview_lines(self) -> int:
        value = self._value("PREVIEW_LINES")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5000:
            raise _type_error("PREVIEW_LINES", value, "a whole number of lines from 1 to 5000")
        return value


parselog_settings = ParselogSettings()
