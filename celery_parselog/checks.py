"""Django system checks that report a misconfigured celery-parselog before a worker runs.

=====================  ===============================================================
``celery_parselog.E001``  ``STORAGE`` names no alias in ``STORAGES``
``celery_parselog.E002``  ``KEY`` names a field a selected task lacks (also at worker start)
``celery_parselog.E003``  ``KEY`` is malformed, or its key function cannot be imported
``celery_parselog.E004``  ``KEY`` lacks ``{task_id}`` or ``{attempt}``, so runs could collide
``celery_parselog.E005``  ``LEVEL`` is not a logging level
``celery_parselog.E006``  a ``TASKS`` pattern is malformed
``celery_parselog.E007``  ``FORMAT`` cannot format a record
``celery_parselog.E008``  a setting has a value of the wrong type
``celery_parselog.E009``  ``SPOOL_DIR`` cannot be created or written
``celery_parselog.E010``  ``SUBJECT`` is not a valid template
``celery_parselog.E011``  a ``REDACT`` entry is neither a built-in name nor a usable pattern
``celery_parselog.W001``  capture is on but ``TASKS`` is empty
``celery_parselog.W002``  a ``TASKS`` entry matches no registered task (worker start)
=====================  ===============================================================
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.files.storage import storages

from celery_parselog.conf import PREFIX, ParselogSettings, SettingError
from celery_parselog.formatting import format_problem
from celery_parselog.keys import FIXED_FIELDS, template_fields
from celery_parselog.selection import TaskSelector, pattern_problem

__all__ = ["check_settings", "register_checks", "registered_task_problems"]


def register_checks() -> None:
    checks.register(check_settings, "celery_parselog")


def _error(message: str, hint: str, check_id: str, key: str) -> checks.CheckMessage:
    return checks.Error(message, hint=hint, id=check_id, obj=PREFIX + key)


def _read(found: list[checks.CheckMessage], read: Callable[[], Any]) -> Any:
    """Read one setting, turning a validation error into a check message."""
    try:
        return read()
    except SettingError as error:
        found.append(checks.Error(error.message, hint=error.hint, id=error.check_id, obj=error.key))
        return None


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Every problem with the ``CELERY_PARSELOG_*`` settings, each with an id and a hint."""
    settings = ParselogSettings()
    found: list[checks.CheckMessage] = []
    enabled = _read(found, lambda: settings.enabled)
    _read(found, lambda: settings.level)
    _read(found, lambda: settings.redact)
    _read(found, lambda: settings.loggers)
    _read(found, lambda: settings.compress_level)
    _read(found, lambda: settings.upload_attempts)
    _read(found, lambda: settings.upload_backoff)
    tasks = _read(found, lambda: settings.tasks)
    if tasks is not None:
        found.extend(_check_tasks(tasks, enabled=bool(enabled)))
    fmt = _read(found, lambda: settings.format)
    if fmt is not None and (problem := format_problem(fmt)):
        found.append(
            _error(
                problem,
                'Use %-style fields of LogRecord, or "json".',
                "celery_parselog.E007",
                "FORMAT",
            )
        )
    alias = _read(found, lambda: settings.storage)
    if alias is not None and alias not in storages.backends:
        known = ", ".join(sorted(storages.backends)) or "none"
        found.append(
            _error(
                f"{PREFIX}STORAGE: {alias!r} is not a storage alias.",
                f"Use one of the aliases in STORAGES ({known}).",
                "celery_parselog.E001",
                "STORAGE",
            )
        )
    key = _read(found, lambda: settings.key)
    if isinstance(key, str):
        found.extend(_check_key_template(key, tasks or ()))
    spool_dir = _read(found, lambda: settings.spool_dir)
    if spool_dir is not None:
        found.extend(_check_spool_dir(spool_dir))
    found.extend(_check_records(settings))
    return found


def _check_records(settings: ParselogSettings) -> list[checks.CheckMessage]:
    """The settings of run records, the admin's preview and downloads."""
    found: list[checks.CheckMessage] = []
    _read(found, lambda: settings.records)
    _read(found, lambda: settings.keep_args)
    _read(found, lambda: settings.download_expiry)
    _read(found, lambda: settings.preview_lines)
    subject = _read(found, lambda: settings.subject)
    if subject is not None:
        try:
            template_fields(subject)
        except ValueError as error:
            found.append(
                _error(
                    f"{PREFIX}SUBJECT: {subject!r} is not a valid template: {error}.",
                    "Use {field} placeholders over the key's fields, such as "
                    "'{data_file_id}'; double braces for literal ones.",
                    "celery_parselog.E010",
                    "SUBJECT",
                )
            )
    return found


def _known_task_functions() -> dict[str, Callable[..., Any]]:
    """The run functions of the project's tasks known so far (Celery's own left out).

    No task module is imported here: outside a worker ``autodiscover_tasks()`` has
    not run, and inside one this check runs while the worker is importing them.
    """
    from celery import current_app

    try:
        tasks = dict(current_app.tasks)
    except Exception:  # noqa: BLE001 - a broken Celery app is reported elsewhere
        return {}
    return {name: task.run for name, task in tasks.items() if not name.startswith("celery.")}


def _check_tasks(tasks: tuple[str, ...], *, enabled: bool) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    for pattern in tasks:
        if problem := pattern_problem(pattern):
            found.append(
                _error(
                    f"{PREFIX}TASKS: {problem}.",
                    "Use exact task names or glob patterns such as 'proj.parsers.*'.",
                    "celery_parselog.E006",
                    "TASKS",
                )
            )
    if enabled and not tasks:
        found.append(
            checks.Warning(
                f"{PREFIX}ENABLED is on but {PREFIX}TASKS is empty, so nothing is captured.",
                hint="List the task names or glob patterns to capture.",
                id="celery_parselog.W001",
                obj=PREFIX + "TASKS",
            )
        )
    return found


def registered_task_problems(
    registered: dict[str, Callable[..., Any]], tasks: Iterable[str], key: object
) -> list[checks.CheckMessage]:
    """Problems only visible once every task is registered, as in a started worker.

    A ``TASKS`` entry that matches no task (W002), and a key template field that a
    selected task lacks (E002).
    """
    found: list[checks.CheckMessage] = []
    for pattern in tasks:
        selector = TaskSelector([pattern])
        if not pattern_problem(pattern) and not any(selector.matches(n) for n in registered):
            found.append(
                checks.Warning(
                    f"{PREFIX}TASKS: {pattern!r} matches no registered task.",
                    hint="Check the task's name (celery -A proj inspect registered).",
                    id="celery_parselog.W002",
                    obj=PREFIX + "TASKS",
                )
            )
    if isinstance(key, str):
        found.extend(_check_key_fields(key, registered, tasks))
    return found


def _check_key_fields(
    template: str, registered: dict[str, Callable[..., Any]], tasks: Iterable[str]
) -> list[checks.CheckMessage]:
    try:
        names = {name.split(".")[0].split("[")[0] for name in template_fields(template)}
    except ValueError:
        return []  # reported as E003 by the template check
    wanted = sorted(names - set(FIXED_FIELDS))
    selector = TaskSelector(tasks)
    found: list[checks.CheckMessage] = []
    for task_name, run in registered.items():
        if not selector.matches(task_name):
            continue
        parameters = set(inspect.signature(run).parameters)
        absent = [name for name in wanted if name not in parameters]
        if absent:
            found.append(
                _error(
                    f"{PREFIX}KEY names {', '.join(absent)}, which task {task_name!r} "
                    "does not have.",
                    f"Fields are {', '.join(FIXED_FIELDS)} and the task's parameters "
                    f"({', '.join(sorted(parameters)) or 'none'}).",
                    "celery_parselog.E002",
                    "KEY",
                )
            )
    return found


def _check_key_template(template: str, tasks: Iterable[str]) -> list[checks.CheckMessage]:
    try:
        fields = template_fields(template)
    except ValueError as error:
        return [
            _error(
                f"{PREFIX}KEY: {template!r} is not a valid template: {error}.",
                "Use {field} and {field:spec} placeholders; double braces for literal ones.",
                "celery_parselog.E003",
                "KEY",
            )
        ]
    found: list[checks.CheckMessage] = []
    if template.startswith("/") or ".." in template.split("/"):
        found.append(
            _error(
                f"{PREFIX}KEY: {template!r} is absolute or climbs with '..'.",
                "Keys are relative names inside the storage.",
                "celery_parselog.E003",
                "KEY",
            )
        )
    names = {name.split(".")[0].split("[")[0] for name in fields}
    missing = [name for name in ("task_id", "attempt") if name not in names]
    if missing:
        found.append(
            _error(
                f"{PREFIX}KEY: {template!r} lacks {', '.join('{' + m + '}' for m in missing)}, "
                "so two runs could be stored under one key.",
                "Include both {task_id} and {attempt} in the key.",
                "celery_parselog.E004",
                "KEY",
            )
        )
    found.extend(_check_key_fields(template, _known_task_functions(), tasks))
    return found


def _check_spool_dir(path: Path) -> list[checks.CheckMessage]:
    target = Path(path).absolute()
    existing = target
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return []
    return [
        _error(
            f"{PREFIX}SPOOL_DIR: {str(target)!r} cannot be created or written.",
            "Point it at a folder on local disk that the worker's user can write.",
            "celery_parselog.E009",
            "SPOOL_DIR",
        )
    ]
