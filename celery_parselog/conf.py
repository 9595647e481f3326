"""The settings of celery-parselog: each key, its default, meaning and validation, declared once.

Settings are Django settings prefixed ``CELERY_PARSELOG_``. Each one is a single
:class:`SettingSpec` declaration on :class:`ParselogSettings`: its name, its default,
the line of the README's table and the function that validates and normalizes its
value. The attribute, the system check (:mod:`celery_parselog.checks`), the worker's
validated snapshot and the README's table are all made from that declaration, so a
setting cannot be documented, read or checked in two different ways.

Values are read on access, never at import time, so ``override_settings`` works and
a project may set them late. A bad value raises :class:`SettingError` (an
``ImproperlyConfigured``) naming the key, with the check id and a hint.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NoReturn, TypeVar, overload

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from celery_parselog.formatting import format_problem
from celery_parselog.keys import field_bases
from celery_parselog.redaction import BUILTIN_NAMES, DEFAULT_REDACT, entry_problem
from celery_parselog.selection import pattern_problem
from celery_parselog.spool import folder_problem

__all__ = [
    "DEFAULT_FORMAT",
    "JSON_FORMAT",
    "PREFIX",
    "SPECS",
    "InvalidSettings",
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
_WRONG_VALUE = "celery_parselog.E008"

T = TypeVar("T")


# -- errors ----------------------------------------------------------------------------


class SettingError(ImproperlyConfigured):
    """A setting with a value celery-parselog cannot use.

    Carries the system check id and a hint, so the checks and the worker report every
    bad setting the same way without repeating the validation. When one setting has
    several bad entries (two unusable ``REDACT`` patterns), the error raised is the
    first and ``errors`` holds all of them, so one round of fixing is enough.
    """

    def __init__(self, name: str, message: str, *, hint: str, check_id: str) -> None:
        self.key = PREFIX + name
        self.message = f"{self.key}: {message}"
        self.hint = hint
        self.check_id = check_id
        self.errors: tuple[SettingError, ...] = (self,)
        super().__init__(f"{self.message} ({hint})")


class InvalidSettings(ImproperlyConfigured):
    """Every problem found while taking a snapshot of the settings, not just the first."""

    def __init__(self, errors: list[SettingError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(error) for error in errors))


@dataclass(frozen=True)
class _Problem:
    """One thing wrong with a value. ``accepted`` (E008) makes the hint "Set KEY to …"."""

    message: str
    hint: str
    check_id: str
    accepted: str = ""


class _InvalidValueError(Exception):
    """Raised by a validator: what is wrong, without the key (the declaration adds it)."""

    def __init__(self, *problems: _Problem) -> None:
        self.problems = problems
        super().__init__(problems)


def _bad(message: str, hint: str, check_id: str) -> _Problem:
    return _Problem(message, hint, check_id)


def _wrong(value: object, accepted: str) -> _InvalidValueError:
    """The E008 problem of a value of the wrong type or out of range."""
    return _InvalidValueError(_Problem(f"{value!r} is not {accepted}.", "", _WRONG_VALUE, accepted))


# -- the declaration of one setting ---------------------------------------------------


class SettingSpec(Generic[T]):
    """One setting, declared once: key, default, documentation and validation.

    Used as an attribute of :class:`ParselogSettings`, it reads and validates its
    Django setting on every access. ``parse`` turns the raw value into what the code
    uses or raises ``_InvalidValueError``; ``probe``, when given, is a further check
    that the system checks and the worker's snapshot run but plain reads do not:
    one with side effects on the machine (writing a file), or a rule the code copes
    with at run time anyway.
    """

    attribute: str

    def __init__(
        self,
        name: str,
        default: Any,
        doc: str,
        parse: Callable[[Any], T],
        *,
        probe: Callable[[T], _InvalidValueError | None] | None = None,
    ) -> None:
        self.name = name
        self.default = default
        self.doc = doc
        self._parse = parse
        self._probe = probe

    @property
    def key(self) -> str:
        return PREFIX + self.name

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    @overload
    def __get__(self, instance: None, owner: type) -> SettingSpec[T]: ...

    @overload
    def __get__(self, instance: ParselogSettings, owner: type) -> T: ...

    def __get__(self, instance: ParselogSettings | None, owner: type) -> SettingSpec[T] | T:
        if instance is None:
            return self
        return instance._value_of(self)

    def __set__(self, instance: ParselogSettings, value: object) -> NoReturn:
        raise AttributeError(f"{self.key} is read from Django's settings, not assigned here")

    def raw(self) -> Any:
        """The value as set in Django's settings, or the default."""
        return getattr(settings, self.key, self.default)

    def read(self, *, probe: bool = False) -> T:
        """The validated value; raises :class:`SettingError` with every problem found."""
        try:
            value = self._parse(self.raw())
            if probe and self._probe is not None and (problem := self._probe(value)):
                raise problem
        except _InvalidValueError as invalid:
            raise self._error(invalid) from invalid.__cause__
        return value

    def _error(self, invalid: _InvalidValueError) -> SettingError:
        errors = [
            SettingError(
                self.name,
                problem.message,
                hint=f"Set {self.key} to {problem.accepted}." if problem.accepted else problem.hint,
                check_id=problem.check_id,
            )
            for problem in invalid.problems
        ]
        first = errors[0]
        first.errors = tuple(errors)
        return first


# -- validators -------------------------------------------------------------------------


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _wrong(value, "True or False")
    return value


def _subject_url(value: object) -> str | Callable[..., str | None] | None:
    """A URL template over the subject, the function a dotted path names, or ``None``."""
    if value is None or value == "":
        return None
    if callable(value):
        return value
    if not isinstance(value, str):
        raise _wrong(value, "a URL template, a dotted path or None")
    if "{" not in value and _DOTTED_PATH.match(value):
        try:
            function = import_string(value)
        except ImportError as error:
            raise _wrong(value, f"an importable function ({error})") from error
        if not callable(function):
            raise _wrong(value, "the dotted path of a callable")
        return function  # type: ignore[no-any-return]
    return value


def _flower_url(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://", "/")):
        raise _wrong(value, "an http(s) URL or a path, or None")
    return value.rstrip("/")


def _optional(parse: Callable[[object], int]) -> Callable[[object], int | None]:
    def parse_optional(value: object) -> int | None:
        return None if value is None else parse(value)

    return parse_optional


def _whole(low: int, high: int, accepted: str) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _wrong(value, accepted)
        return value

    return parse


def _seconds(high: float) -> Callable[[object], float]:
    accepted = f"a number of seconds from 0 to {high:g}"

    def parse(value: object) -> float:
        # NaN fails every comparison, so it is refused here too.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
            raise _wrong(value, accepted)
        return float(value)

    return parse


def _tasks(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _wrong(value, "a list of task names or glob patterns")
    problems = [
        _bad(
            f"{problem}.",
            "Use exact task names or glob patterns such as 'proj.parsers.*'.",
            "celery_parselog.E006",
        )
        for pattern in value
        if (problem := pattern_problem(pattern))
    ]
    if problems:
        raise _InvalidValueError(*problems)
    return tuple(value)


def _level(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        number = logging.getLevelName(value.upper())
        if isinstance(number, int):
            return number
    raise _InvalidValueError(
        _bad(
            f"{value!r} is not a logging level.",
            "Use DEBUG, INFO, WARNING, ERROR, CRITICAL, or a non-negative number.",
            "celery_parselog.E005",
        )
    )


def _loggers(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() == v and v not in ("", "-") for v in value
    ):
        raise _wrong(value, 'a list of logger names, "*" or "-name"')
    return tuple(value)


def _format(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _wrong(value, 'a logging format string or "json"')
    if problem := format_problem(value):
        raise _InvalidValueError(
            _bad(problem, 'Use %-style fields of LogRecord, or "json".', "celery_parselog.E007")
        )
    return value


def _compress_level(value: object) -> int:
    if value is True:
        return 6
    if value is False:
        return 0
    if isinstance(value, int) and 1 <= value <= 9:
        return value
    raise _wrong(value, "True, False or a gzip level from 1 to 9")


def _max_bytes(value: object) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or (value != 0 and value < _MIN_MAX_BYTES)
    ):
        raise _wrong(
            value,
            f"0 or a whole number of bytes ≥ {_MIN_MAX_BYTES} (128 MiB is 134217728)",
        )
    return value


def _redact(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _wrong(value, "a list of built-in names and regular expressions")
    hint = (
        f"Use built-in names ({', '.join(BUILTIN_NAMES)}) or regular expressions "
        "that match something."
    )
    problems = [
        _bad(f"{entry!r}: {problem}.", hint, "celery_parselog.E011")
        for entry in value
        if (problem := entry_problem(entry)) is not None
    ]
    if problems:
        raise _InvalidValueError(*problems)
    return tuple(value)


def _storage(value: object) -> str:
    from django.core.files.storage import storages

    if not isinstance(value, str) or not value:
        raise _wrong(value, "the alias of a storage in STORAGES")
    if value not in storages.backends:
        known = ", ".join(sorted(storages.backends)) or "none"
        raise _InvalidValueError(
            _bad(
                f"{value!r} is not a storage alias.",
                f"Use one of the aliases in STORAGES ({known}).",
                "celery_parselog.E001",
            )
        )
    return value


def _key(value: object) -> str | Callable[..., str]:
    """A key template, or the key function named by a dotted path (imported here)."""
    if callable(value):
        return value
    if not isinstance(value, str) or not value:
        raise _wrong(value, "a key template or the dotted path of a function")
    if "{" not in value and _DOTTED_PATH.match(value):
        try:
            function = import_string(value)
        except ImportError as error:
            raise _InvalidValueError(
                _bad(
                    f"cannot import the key function {value!r}: {error}.",
                    "Give the dotted path of a function that takes a KeyContext.",
                    "celery_parselog.E003",
                )
            ) from error
        if not callable(function):
            raise _wrong(value, "the dotted path of a callable")
        return function  # type: ignore[no-any-return]
    return _template(
        value,
        "Use {field} and {field:spec} placeholders; double braces for literal ones.",
        "celery_parselog.E003",
    )


def _template(value: str, hint: str, check_id: str) -> str:
    """``value`` if it parses as a format template, else the problem ``check_id`` reports."""
    try:
        field_bases(value)
    except ValueError as error:
        raise _InvalidValueError(
            _bad(f"{value!r} is not a valid template: {error}.", hint, check_id)
        ) from None
    return value


def _probe_key(key: str | Callable[..., str]) -> _InvalidValueError | None:
    """Rules of a key template that keep runs apart and inside the storage.

    A probe rather than part of reading: keys are still made safe when a run is
    stored (normalized, the task id added), so only the checks and the worker's
    snapshot insist on them.
    """
    if not isinstance(key, str):
        return None
    problems: list[_Problem] = []
    if key.startswith("/") or ".." in key.split("/"):
        problems.append(
            _bad(
                f"{key!r} is absolute or climbs with '..'.",
                "Keys are relative names inside the storage.",
                "celery_parselog.E003",
            )
        )
    names = field_bases(key)
    missing = [name for name in ("task_id", "attempt") if name not in names]
    if missing:
        problems.append(
            _bad(
                f"{key!r} lacks {', '.join('{' + m + '}' for m in missing)}, "
                "so two runs could be stored under one key.",
                "Include both {task_id} and {attempt} in the key.",
                "celery_parselog.E004",
            )
        )
    return _InvalidValueError(*problems) if problems else None


def _spool_dir(value: object) -> Path:
    if value is None:
        # One folder per user: a shared name in a shared /tmp could be pre-created,
        # and so owned, by anyone (see spool.folder_problem).
        return Path(tempfile.gettempdir()) / f"celery-parselog-{os.geteuid()}"
    if not isinstance(value, (str, Path)) or not str(value):
        raise _wrong(value, "a folder path or None")
    return Path(value)


def _probe_spool_dir(path: Path) -> _InvalidValueError | None:
    """Whether the folder exists or can be made, and takes a file: tried, not guessed.

    ``os.access`` answers yes to root for folders nobody can write (``/proc``), so a
    file is really created and removed; for a folder that does not exist yet, a
    folder is created and removed in its nearest existing parent. Nothing is left
    behind either way.
    """
    target = path.absolute()
    if (target.is_symlink() or target.is_dir()) and (problem := folder_problem(target)):
        return _InvalidValueError(
            _bad(
                f"{problem}: another user could read the logs or plant files in it.",
                "Use a folder owned by the worker's user with mode 0700 (the default, "
                "celery-parselog-<uid> in the temporary folder, is made so).",
                "celery_parselog.E014",
            )
        )
    existing = target
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        if existing == target:
            with tempfile.TemporaryFile(dir=target, prefix=".parselog-probe-"):
                pass
        else:
            Path(tempfile.mkdtemp(dir=existing, prefix=".parselog-probe-")).rmdir()
    except OSError as error:
        return _InvalidValueError(
            _bad(
                f"{str(target)!r} cannot be created or written ({error.strerror or error}).",
                "Point it at a folder on local disk that the worker's user can write.",
                "celery_parselog.E009",
            )
        )
    return None


def _subject(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _wrong(value, 'a template such as "{data_file_id}", or None')
    return _template(
        value,
        "Use {field} placeholders over the key's fields, such as '{data_file_id}'; "
        "double braces for literal ones.",
        "celery_parselog.E010",
    )


# -- the settings --------------------------------------------------------------------


class ParselogSettings:
    """Typed, validated access to the ``CELERY_PARSELOG_*`` settings.

    A plain instance reads Django's settings on each access. :meth:`snapshot` gives
    an instance whose values were all read, validated and probed once, which is what
    a worker captures with: it cannot change under a running task.
    """

    enabled = SettingSpec(
        "ENABLED",
        False,
        "Capture in every worker of the project. `celery worker --parselog` / "
        "`--no-parselog` overrides it for one worker.",
        _boolean,
    )
    tasks = SettingSpec(
        "TASKS",
        [],
        "Task names or glob patterns (`proj.parsers.*`) whose runs are captured. "
        "Empty captures nothing.",
        _tasks,
    )
    level = SettingSpec(
        "LEVEL",
        "INFO",
        "Lowest level written to a run's log: a level name or number.",
        _level,
    )
    loggers = SettingSpec(
        "LOGGERS",
        ["*"],
        "Which loggers feed a run's log. `*` is every logger, non-propagating ones "
        "included; a name adds that logger and its children; `-name` leaves them out.",
        _loggers,
    )
    format = SettingSpec(
        "FORMAT",
        DEFAULT_FORMAT,
        "A `logging` format string (`%(task_id)s` and `%(task_name)s` may be used), "
        'or `"json"` for JSON lines. Times are UTC.',
        _format,
    )
    compress_level = SettingSpec(
        "COMPRESS",
        True,
        "Gzip the log while it is written and add `.gz` to its key. `True` means "
        "level 6; a number from 1 to 9 picks the level.",
        _compress_level,
    )
    max_bytes = SettingSpec(
        "MAX_BYTES",
        128 * 1024 * 1024,
        "Cap on a run's log, in bytes of text. Past it the log keeps its first and last "
        "parts, with a line saying how many records and bytes were left out between. "
        "`0` means no cap.",
        _max_bytes,
    )
    redact = SettingSpec(
        "REDACT",
        list(DEFAULT_REDACT),
        "What is masked in each record's final text before it reaches the disk: built-in "
        "names (`ssn`, `email`, `phone`, `card`, `aws_key`, `jwt`, `auth_header`, "
        "`url_password`, `secrets`; opt-in: `identifiers`) or regular expressions. Matches become "
        "`[REDACTED:<name>]`. `[]` turns redaction off.",
        _redact,
    )
    storage = SettingSpec(
        "STORAGE",
        "default",
        "Alias in Django's `STORAGES` that receives the logs.",
        _storage,
    )
    key = SettingSpec(
        "KEY",
        DEFAULT_KEY,
        "Template of the stored name, over `task_name`, `task_id`, `attempt`, "
        "`root_id`, `started` and the task's parameters; or the dotted path of a "
        "function that takes a `KeyContext` and returns the name.",
        _key,
        probe=_probe_key,
    )
    spool_dir = SettingSpec(
        "SPOOL_DIR",
        None,
        "Folder for the files being written, private to the worker's user (mode 0700, "
        "created so if missing; refused otherwise); `None` means `celery-parselog-<uid>` "
        "in the system's temporary folder.",
        _spool_dir,
        probe=_probe_spool_dir,
    )
    checkpoint_seconds = SettingSpec(
        "CHECKPOINT_SECONDS",
        60,
        "Once a run has lasted this many seconds, upload what it logged so far under its "
        "final key, and again at that interval, so losing the machine loses at most that "
        "much; shorter runs are never checkpointed. `0` turns it off.",
        _seconds(86400),
    )
    upload_attempts = SettingSpec(
        "UPLOAD_ATTEMPTS",
        3,
        "How many times an upload is tried before the log is left in the spool folder.",
        _whole(1, 20, "a whole number from 1 to 20"),
    )
    recovery_interval = SettingSpec(
        "RECOVERY_INTERVAL",
        60,
        "Seconds between a worker's sweeps of its spool folder for logs left by failed "
        "uploads or killed children; `0` sweeps only when the worker starts.",
        _seconds(86400),
    )
    upload_backoff = SettingSpec(
        "UPLOAD_BACKOFF",
        0.5,
        "Seconds to wait before the second upload attempt; doubled for each further one.",
        _seconds(60),
    )
    records = SettingSpec(
        "RECORDS",
        True,
        "Keep a `TaskLog` row per captured run in the database (admin pages, comparing "
        "runs, the `log_uploaded` signal). `False` writes no rows.",
        _boolean,
    )
    subject = SettingSpec(
        "SUBJECT",
        None,
        "Template over the key's fields naming what a run worked on, such as "
        '`"{data_file_id}"`; runs with one subject are compared with each other. '
        "`None` or empty leaves the subject empty.",
        _subject,
    )
    keep_args = SettingSpec(
        "KEEP_ARGS",
        True,
        "Keep the task's args and kwargs on its `TaskLog` row (values JSON cannot hold "
        "are kept as their `repr`).",
        _boolean,
    )
    download_expiry = SettingSpec(
        "DOWNLOAD_EXPIRY",
        300,
        "Seconds an admin download link to a log on S3 (a presigned URL) stays valid.",
        # S3 refuses presigned URLs valid for more than seven days.
        _whole(1, 604800, "a whole number of seconds from 1 to 604800"),
    )
    subject_url = SettingSpec(
        "SUBJECT_URL",
        None,
        "Where the admin links a run's subject to, such as the host's admin page of the "
        'data file: a URL template over `subject` (`"/admin/files/datafile/{subject}/'
        'change/"`), or the dotted path of a function that takes the `TaskLog` row and '
        "returns a URL or `None`. `None` links nothing.",
        _subject_url,
    )
    flower_url = SettingSpec(
        "FLOWER_URL",
        None,
        'Base URL of a Flower instance, such as `"https://flower.example.org"`; the admin '
        "then links each run to its task's page there. `None` links nothing.",
        _flower_url,
    )
    metrics_port = SettingSpec(
        "METRICS_PORT",
        None,
        "Port on which each worker's main process serves Prometheus metrics at `/metrics` "
        "(needs the `metrics` extra; under prefork set `PROMETHEUS_MULTIPROC_DIR`); "
        "`None` serves none.",
        _optional(_whole(1, 65535, "a port number from 1 to 65535, or None")),
    )
    preview_lines = SettingSpec(
        "PREVIEW_LINES",
        50,
        "How many first and last lines of a log the admin's detail page shows.",
        _whole(1, 5000, "a whole number of lines from 1 to 5000"),
    )

    def __init__(self) -> None:
        self._fixed: dict[str, Any] | None = None

    def _value_of(self, spec: SettingSpec[T]) -> T:
        if self._fixed is not None:
            return self._fixed[spec.name]  # type: ignore[no-any-return]
        return spec.read()

    def read_all(self) -> tuple[dict[str, Any], list[SettingError]]:
        """Every setting read and probed once: the usable values by name, and every error.

        A setting with a bad value is left out of the values; the others are still
        there, so checks that need two settings can run on whatever is usable.
        """
        values: dict[str, Any] = {}
        errors: list[SettingError] = []
        for spec in SPECS:
            try:
                values[spec.name] = (
                    self._fixed[spec.name] if self._fixed is not None else spec.read(probe=True)
                )
            except SettingError as error:
                errors.extend(error.errors)
        return values, errors

    def snapshot(self) -> ParselogSettings:
        """These settings, validated and probed once and then fixed.

        Raises :class:`InvalidSettings` listing every problem when any value is bad.
        """
        values, errors = self.read_all()
        if errors:
            raise InvalidSettings(errors)
        fixed = ParselogSettings()
        fixed._fixed = values
        return fixed


SPECS: tuple[SettingSpec[Any], ...] = tuple(
    value for value in vars(ParselogSettings).values() if isinstance(value, SettingSpec)
)
"""Every setting, in the order of the README's table."""


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


parselog_settings = ParselogSettings()
