"""Django system checks that report a misconfigured celery-parselog before a worker runs.

=====================  ===============================================================
``celery_parselog.E001``  ``STORAGE`` names no alias in ``STORAGES``
``celery_parselog.E002``  ``KEY`` names a field a selected task lacks
``celery_parselog.E003``  ``KEY`` is malformed, or its key function cannot be imported
``celery_parselog.E004``  ``KEY`` lacks ``{task_id}`` or ``{attempt}``, so runs could collide
``celery_parselog.E005``  ``LEVEL`` is not a logging level
``celery_parselog.E006``  a ``TASKS`` pattern is malformed
``celery_parselog.E007``  ``FORMAT`` cannot format a record
``celery_parselog.E008``  a setting has a value of the wrong type
``celery_parselog.E009``  ``SPOOL_DIR`` cannot be created or written
``celery_parselog.E010``  ``SUBJECT`` is not a valid template
``celery_parselog.E011``  a ``REDACT`` entry is neither a built-in name nor a usable pattern
``celery_parselog.E012``  ``SUBJECT`` names a field a selected task lacks
``celery_parselog.E013``  the project's task modules cannot be imported
``celery_parselog.E014``  ``SPOOL_DIR`` is not private to the worker's user
``celery_parselog.W001``  capture is on but ``TASKS`` is empty
``celery_parselog.W002``  a ``TASKS`` entry matches no registered task
``celery_parselog.W003``  no Celery app is loaded, so nothing could be checked against tasks
=====================  ===============================================================

Each setting's own problems come from its declaration in :mod:`celery_parselog.conf`;
this module adds what needs several settings or the project's tasks. The tasks are
loaded the way a worker loads them (the app's loader imports its modules and runs
autodiscovery), so a typo in a key field is caught by ``manage.py check`` in CI, not
first by a worker in production.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Celery
from django.apps import AppConfig
from django.core import checks

from celery_parselog.conf import PREFIX, ParselogSettings, SettingError
from celery_parselog.keys import FIXED_FIELDS, field_bases
from celery_parselog.selection import TaskSelector, pattern_problem

__all__ = [
    "check_settings",
    "project_tasks",
    "register_checks",
    "registered_task_problems",
    "run_functions",
    "setting_message",
]

# Set while this module imports the project's task modules: the loader's
# import_modules signal makes Celery's Django fixup run every system check again,
# which would otherwise load the tasks again, without end.
_loading = False


def register_checks() -> None:
    checks.register(check_settings, "celery_parselog")


def setting_message(error: SettingError) -> checks.CheckMessage:
    """The check message of one setting's problem."""
    return checks.Error(error.message, hint=error.hint, id=error.check_id, obj=error.key)


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Every problem with the ``CELERY_PARSELOG_*`` settings, each with an id and a hint."""
    values, errors = ParselogSettings().read_all()
    found = [setting_message(error) for error in errors]
    tasks = values.get("TASKS")
    if values.get("ENABLED") and tasks == ():
        found.append(
            checks.Warning(
                f"{PREFIX}ENABLED is on but {PREFIX}TASKS is empty, so nothing is captured.",
                hint="List the task names or glob patterns to capture.",
                id="celery_parselog.W001",
                obj=PREFIX + "TASKS",
            )
        )
    if tasks and not _loading:
        registered, problems = project_tasks()
        found.extend(problems)
        if registered is not None:
            found.extend(
                registered_task_problems(
                    registered, tasks, values.get("KEY"), subject=values.get("SUBJECT")
                )
            )
    return found


def _project_app() -> Celery | None:
    """The project's Celery app, or ``None`` when only Celery's own fallback app exists.

    A Django project makes its app current by importing it from its package's
    ``__init__`` (as Celery's Django guide says). Celery's fallback app reads a
    ``celeryconfig`` module with the default loader and knows none of the tasks.
    """
    from celery import _state
    from celery.loaders.default import Loader as FallbackLoader

    app = _state.get_current_app()
    return None if isinstance(app.loader, FallbackLoader) else app


@contextmanager
def _loading_tasks() -> Iterator[None]:
    global _loading
    _loading = True
    try:
        yield
    finally:
        _loading = False


def project_tasks() -> tuple[dict[str, Callable[..., Any]] | None, list[checks.CheckMessage]]:
    """The run functions of the project's tasks by name, loaded as a worker loads them.

    Returns ``None`` and a message when they cannot be known. Inside a worker, whose
    loader is importing the task modules at that very moment (Celery's Django fixup
    runs the system checks from there), nothing is loaded or read: the registry is
    not complete yet, and the worker checks the full registry itself once it is set
    up (:func:`celery_parselog.worker.on_worker_setup`).
    """
    app = _project_app()
    if app is None:
        return None, [
            checks.Warning(
                "No Celery app is loaded, so TASKS, KEY and SUBJECT could not be checked "
                "against the project's tasks.",
                hint="Import the project's Celery app in its package's __init__.py "
                "(from .celery import app as celery_app), as Celery's Django guide does.",
                id="celery_parselog.W003",
                obj=PREFIX + "TASKS",
            )
        ]
    if app.loader.worker_initialized:
        return None, []
    try:
        with _loading_tasks():
            app.loader.import_default_modules()
        return run_functions(app), []
    except Exception as error:  # noqa: BLE001 - reported as a check, the check must not crash
        return None, [
            checks.Error(
                f"The project's task modules cannot be imported: {error!r}.",
                hint="Fix the import; a worker would fail on it too.",
                id="celery_parselog.E013",
                obj=PREFIX + "TASKS",
            )
        ]


def run_functions(app: Celery) -> dict[str, Callable[..., Any]]:
    """The run function of every task the app has registered, by task name."""
    return {name: task.run for name, task in app.tasks.items()}


def registered_task_problems(
    registered: Mapping[str, Callable[..., Any]],
    tasks: Iterable[str],
    key: object,
    *,
    subject: object = None,
) -> list[checks.CheckMessage]:
    """Problems only visible with the project's tasks registered.

    A ``TASKS`` entry that matches no task (W002), and a ``KEY`` (E002) or ``SUBJECT``
    (E012) field that a selected task lacks.
    """
    tasks = tuple(tasks)
    found: list[checks.CheckMessage] = []
    for pattern in tasks:
        selector = TaskSelector([pattern])
        if pattern_problem(pattern) is None and not any(selector.matches(n) for n in registered):
            found.append(
                checks.Warning(
                    f"{PREFIX}TASKS: {pattern!r} matches no registered task.",
                    hint="Check the task's name (celery -A proj inspect registered).",
                    id="celery_parselog.W002",
                    obj=PREFIX + "TASKS",
                )
            )
    for setting, template, check_id in (
        ("KEY", key, "celery_parselog.E002"),
        ("SUBJECT", subject, "celery_parselog.E012"),
    ):
        if isinstance(template, str):
            found.extend(_missing_fields(setting, template, check_id, registered, tasks))
    return found


def _missing_fields(
    setting: str,
    template: str,
    check_id: str,
    registered: Mapping[str, Callable[..., Any]],
    tasks: Iterable[str],
) -> list[checks.CheckMessage]:
    """One message per selected task that lacks a field the template uses."""
    try:
        names = field_bases(template)
    except ValueError:
        return []  # reported by the setting's own validation
    wanted = sorted(names - set(FIXED_FIELDS))
    if not wanted:
        return []
    selector = TaskSelector(tasks)
    found: list[checks.CheckMessage] = []
    for task_name, run in registered.items():
        # Celery's own tasks (celery.ping, …) are never held to the project's fields.
        if task_name.startswith("celery.") or not selector.matches(task_name):
            continue
        parameters = set(inspect.signature(run).parameters)
        absent = [name for name in wanted if name not in parameters]
        if absent:
            found.append(
                checks.Error(
                    f"{PREFIX}{setting} names {', '.join(absent)}, which task {task_name!r} "
                    "does not have.",
                    hint=f"Fields are {', '.join(FIXED_FIELDS)} and the task's parameters "
                    f"({', '.join(sorted(parameters)) or 'none'}).",
                    id=check_id,
                    obj=PREFIX + setting,
                )
            )
    return found
