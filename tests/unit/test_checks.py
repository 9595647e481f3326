"""Unit tests for celery_parselog.checks: each system check id and when it is reported."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, _state
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from celery_parselog.checks import check_settings, registered_task_problems
from celery_parselog.conf import DEFAULT_KEY, PREFIX, SPECS

ERROR_IDS = {f"celery_parselog.E{n:03}" for n in range(1, 14)}


def _parse(path: str, customer: str = "acme") -> None:
    """Body of the registered task ``tests.parse``."""


def _bound(self: Any, path: str) -> None:
    """Body of the bound task ``tests.bound``: ``self`` is not a key field."""


def _report(day: str) -> None:
    """Body of ``other.report``, which ``tests.*`` does not select."""


@contextmanager
def current_app(name: str, *, with_tests_tasks: bool) -> Iterator[Celery]:
    """A finalized Celery app, current for the block, with other.report and, if asked,
    tests.parse and tests.bound; the previous current app is put back afterwards."""
    previous = _state._tls.current_app  # type: ignore[attr-defined]
    app = Celery(name, set_as_current=True, fixups=[])
    try:
        if with_tests_tasks:
            app.task(name="tests.parse", shared=False)(_parse)
            app.task(name="tests.bound", bind=True, shared=False)(_bound)
        app.task(name="other.report", shared=False)(_report)
        app.finalize()
        assert _state.get_current_app() is app
        yield app
    finally:
        _state._set_current_app(previous)  # type: ignore[attr-defined]
        app.close()


@pytest.fixture
def celery_app() -> Iterator[Celery]:
    """A finalized Celery app, current for the test, with tests.parse, tests.bound, other.report."""
    with current_app("checks-test", with_tests_tasks=True) as app:
        assert {"tests.parse", "tests.bound", "other.report"} <= set(app.tasks)
        yield app


@pytest.fixture
def app_without_tests_tasks() -> Iterator[Celery]:
    """A finalized current Celery app whose only own task is other.report."""
    with current_app("checks-test-empty", with_tests_tasks=False) as app:
        assert not any(name.startswith("tests.") for name in app.tasks)
        yield app


def run_checks(**settings: Any) -> list[checks.CheckMessage]:
    """check_settings() under the given settings (full names)."""
    with override_settings(**settings):
        return check_settings()


def assert_key_passes(key: str, *tasks: str) -> None:
    """The key template ``key`` gives no message at all, with TASKS selecting ``tasks``
    (or as tests/settings.py sets it when none are given)."""
    settings: dict[str, Any] = {"CELERY_PARSELOG_KEY": key}
    if tasks:
        settings["CELERY_PARSELOG_TASKS"] = list(tasks)
    assert run_checks(**settings) == []


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    """The check ids of the messages, sorted."""
    return sorted(str(message.id) for message in messages)


def only(messages: list[checks.CheckMessage], check_id: str) -> checks.CheckMessage:
    """The single message, asserting it has the given id."""
    assert [message.id for message in messages] == [check_id]
    return messages[0]


# -- defaults ------------------------------------------------------------------------


@pytest.mark.usefixtures("celery_app")
def test_default_settings_have_no_problems() -> None:
    """tests/settings.py with a registered tests.* task gives no message at all."""
    assert check_settings() == []


@pytest.mark.usefixtures("app_without_tests_tasks")
def test_default_settings_without_tests_tasks_warn_at_check_time() -> None:
    """Without any tests.* task registered, check itself says TASKS matches nothing (W002)."""
    message = only(check_settings(), "celery_parselog.W002")
    assert message.msg == "CELERY_PARSELOG_TASKS: 'tests.*' matches no registered task."


# -- E001 ----------------------------------------------------------------------------


@pytest.mark.usefixtures("celery_app")
def test_e001_unknown_storage_alias() -> None:
    """STORAGE naming no alias in STORAGES is E001, listing the known aliases."""
    message = only(run_checks(CELERY_PARSELOG_STORAGE="nope"), "celery_parselog.E001")
    assert message.level == checks.ERROR
    assert message.obj == "CELERY_PARSELOG_STORAGE"
    assert "'nope'" in message.msg
    assert message.hint is not None
    assert "default, staticfiles" in message.hint


@pytest.mark.usefixtures("celery_app")
def test_e001_follows_overridden_storages() -> None:
    """An alias added to STORAGES is accepted, and a removed one is reported."""
    storages = {
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
        "logs": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    assert run_checks(STORAGES=storages, CELERY_PARSELOG_STORAGE="logs") == []
    without_logs = {"default": storages["default"]}
    messages = run_checks(STORAGES=without_logs, CELERY_PARSELOG_STORAGE="logs")
    only(messages, "celery_parselog.E001")


# -- E002 ----------------------------------------------------------------------------


@pytest.mark.usefixtures("celery_app")
def test_e002_field_missing_from_selected_task() -> None:
    """A key field that a selected task lacks is E002 naming the field and the task."""
    messages = run_checks(
        CELERY_PARSELOG_TASKS=["tests.*"],
        CELERY_PARSELOG_KEY="{task_name}/{path}/{customer}/{task_id}-{attempt}.log",
    )
    message = only(messages, "celery_parselog.E002")
    assert message.obj == "CELERY_PARSELOG_KEY"
    assert "customer" in message.msg
    assert "'tests.bound'" in message.msg
    assert "path" not in message.msg.split("which")[0]
    assert message.hint is not None
    assert message.hint.endswith("the task's parameters (path).")  # a bound task's self is not one


@pytest.mark.usefixtures("celery_app")
def test_e002_one_message_per_task_lacking_fields() -> None:
    """Each selected task missing a field gets its own E002."""
    messages = run_checks(
        CELERY_PARSELOG_TASKS=["tests.*"],
        CELERY_PARSELOG_KEY="{day}/{task_id}-{attempt}.log",
    )
    assert ids(messages) == ["celery_parselog.E002", "celery_parselog.E002"]
    assert sorted("'tests.parse'" in m.msg for m in messages) == [False, True]
    assert sorted("'tests.bound'" in m.msg for m in messages) == [False, True]


@pytest.mark.usefixtures("celery_app")
def test_e002_ignores_unselected_tasks() -> None:
    """Tasks that TASKS does not select are not held to the key's fields."""
    assert_key_passes("{customer}/{path}/{task_id}-{attempt}.log", "tests.parse")
    assert_key_passes("{day}/{task_id}-{attempt}.log", "other.report")


@pytest.mark.usefixtures("celery_app")
def test_e002_attribute_and_index_fields_use_their_base_name() -> None:
    """``{path.name}`` and ``{path[0]}`` only require a ``path`` parameter."""
    assert_key_passes("{path.name}/{path[0]}/{task_id}-{attempt}.log", "tests.parse")


@pytest.mark.usefixtures("celery_app")
def test_e002_fixed_fields_need_no_parameter() -> None:
    """Fixed fields such as root_id and started are never reported as missing."""
    assert_key_passes("{task_name}/{root_id}/{started:%Y}/{task_id}-{attempt}.log")


@pytest.mark.usefixtures("celery_app")
def test_e002_leaves_out_celerys_own_tasks() -> None:
    """Celery's built-in celery.* tasks are never held to the key's fields."""
    messages = run_checks(
        CELERY_PARSELOG_TASKS=["celery.*", "other.*"],
        CELERY_PARSELOG_KEY="{path}/{task_id}-{attempt}.log",
    )
    message = only(messages, "celery_parselog.E002")
    assert "'other.report'" in message.msg


# -- E003 ----------------------------------------------------------------------------


@pytest.mark.usefixtures("celery_app")
@pytest.mark.parametrize(
    "key",
    [
        "{task_id",
        "{task_id}-{attempt}}",
        "no_such_module_for_parselog.make_key",
        "tests.unit.test_checks.no_such_function",
        "/abs/{task_id}-{attempt}.log",
        "logs/../{task_id}-{attempt}.log",
        "../{task_id}-{attempt}.log",
    ],
)
def test_e003_bad_key(key: str) -> None:
    """A malformed template, unimportable key function or absolute/'..' template is E003."""
    message = only(run_checks(CELERY_PARSELOG_KEY=key), "celery_parselog.E003")
    assert message.level == checks.ERROR
    assert message.obj == "CELERY_PARSELOG_KEY"
    assert "CELERY_PARSELOG_KEY" in message.msg


@pytest.mark.usefixtures("celery_app")
def test_key_function_is_not_checked_as_template() -> None:
    """An importable key function gives no key message."""
    assert run_checks(CELERY_PARSELOG_KEY="celery_parselog.keys.normalize_key") == []


# -- E004 ----------------------------------------------------------------------------


@pytest.mark.usefixtures("celery_app")
@pytest.mark.parametrize(
    ("key", "missing", "present"),
    [
        ("{task_name}/{task_id}.log", "{attempt}", "{task_id}"),
        ("{task_name}/{attempt}.log", "{task_id}", "{attempt}"),
    ],
)
def test_e004_template_lacks_task_id_or_attempt(key: str, missing: str, present: str) -> None:
    """A template without {task_id} or {attempt} is E004 naming what is missing."""
    message = only(run_checks(CELERY_PARSELOG_KEY=key), "celery_parselog.E004")
    assert message.obj == "CELERY_PARSELOG_KEY"
    assert f"lacks {missing}," in message.msg
    assert f"lacks {present}" not in message.msg


@pytest.mark.usefixtures("celery_app")
def test_e004_template_lacks_both() -> None:
    """A template with neither field is one E004 naming both."""
    message = only(run_checks(CELERY_PARSELOG_KEY="logs/{task_name}.log"), "celery_parselog.E004")
    assert "lacks {task_id}, {attempt}," in message.msg


# -- E005 to E009 --------------------------------------------------------------------


@pytest.mark.usefixtures("celery_app")
@pytest.mark.parametrize("level", ["LOUD", -1, True, "10"])
def test_e005_invalid_level(level: object) -> None:
    """A LEVEL that is not a logging level is E005."""
    message = only(run_checks(CELERY_PARSELOG_LEVEL=level), "celery_parselog.E005")
    assert message.obj == "CELERY_PARSELOG_LEVEL"
    assert message.msg.startswith("CELERY_PARSELOG_LEVEL: ")


@pytest.mark.usefixtures("celery_app")
@pytest.mark.parametrize(
    "tasks",
    [["tests.[abc"], ["tests.parse", "tests. parse"], [""], ["tests.[[ab]]"]],
)
def test_e006_malformed_task_pattern(tasks: list[str]) -> None:
    """A malformed TASKS pattern is E006 (and not also W002)."""
    message = only(run_checks(CELERY_PARSELOG_TASKS=tasks), "celery_parselog.E006")
    assert message.obj == "CELERY_PARSELOG_TASKS"


@pytest.mark.usefixtures("celery_app")
def test_e006_one_per_bad_pattern() -> None:
    """Each malformed pattern gets its own E006."""
    messages = run_checks(CELERY_PARSELOG_TASKS=["tests.[a", " tests.parse", "tests.parse"])
    assert ids(messages) == ["celery_parselog.E006", "celery_parselog.E006"]


@pytest.mark.usefixtures("celery_app")
@pytest.mark.parametrize("fmt", ["%(nosuch)s", "no fields", "%(message)d"])
def test_e007_bad_format(fmt: str) -> None:
    """A FORMAT that cannot format a record is E007."""
    message = only(run_checks(CELERY_PARSELOG_FORMAT=fmt), "celery_parselog.E007")
    assert message.obj == "CELERY_PARSELOG_FORMAT"


@pytest.mark.usefixtures("celery_app")
@pytest.mark.parametrize("fmt", ["json", "%(task_id)s %(task_name)s %(message)s"])
def test_good_formats_pass(fmt: str) -> None:
    """JSON and formats using task fields give no message."""
    assert run_checks(CELERY_PARSELOG_FORMAT=fmt) == []


@pytest.mark.usefixtures("celery_app")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENABLED", "yes"),
        ("TASKS", "tests.*"),
        ("LOGGERS", "*"),
        ("FORMAT", ""),
        ("COMPRESS", 10),
        ("STORAGE", 5),
        ("KEY", 42),
        ("KEY", "celery_parselog.conf.PREFIX"),
        ("SPOOL_DIR", 42),
        ("UPLOAD_ATTEMPTS", 0),
        ("UPLOAD_BACKOFF", "fast"),
    ],
)
def test_e008_wrong_type(name: str, value: object) -> None:
    """A setting of the wrong type is one E008 on that setting."""
    message = only(run_checks(**{PREFIX + name: value}), "celery_parselog.E008")
    assert message.level == checks.ERROR
    assert message.obj == PREFIX + name
    assert message.msg.startswith(f"{PREFIX}{name}: ")
    assert message.hint


@pytest.mark.usefixtures("celery_app")
def test_e009_spool_dir_under_a_file(tmp_path: Path) -> None:
    """A SPOOL_DIR below a regular file cannot be created and is E009."""
    blocker = tmp_path / "regular-file"
    blocker.write_text("not a folder")
    message = only(
        run_checks(CELERY_PARSELOG_SPOOL_DIR=str(blocker / "spool" / "deeper")),
        "celery_parselog.E009",
    )
    assert message.obj == "CELERY_PARSELOG_SPOOL_DIR"
    assert str(blocker / "spool" / "deeper") in message.msg


@pytest.mark.usefixtures("celery_app")
def test_e009_spool_dir_is_a_file(tmp_path: Path) -> None:
    """A SPOOL_DIR that is itself a regular file is E009."""
    blocker = tmp_path / "regular-file"
    blocker.write_text("not a folder")
    only(run_checks(CELERY_PARSELOG_SPOOL_DIR=blocker), "celery_parselog.E009")


@pytest.mark.usefixtures("celery_app")
def test_e014_spool_dir_others_may_write_in(tmp_path: Path) -> None:
    """A SPOOL_DIR another user could write in (a pre-created 0777 folder) is E014, naming it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    message = only(run_checks(CELERY_PARSELOG_SPOOL_DIR=shared), "celery_parselog.E014")
    assert str(shared) in str(message.msg)


@pytest.mark.usefixtures("celery_app")
def test_e014_spool_dir_that_is_a_link(tmp_path: Path) -> None:
    """A SPOOL_DIR that is a link to a folder is E014: it is not followed."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    only(run_checks(CELERY_PARSELOG_SPOOL_DIR=link), "celery_parselog.E014")


@pytest.mark.usefixtures("celery_app")
def test_spool_dir_creatable_or_existing_passes(tmp_path: Path) -> None:
    """An existing folder, or one that can be created below one, gives no message."""
    assert run_checks(CELERY_PARSELOG_SPOOL_DIR=tmp_path) == []
    assert run_checks(CELERY_PARSELOG_SPOOL_DIR=str(tmp_path / "a" / "b")) == []


@pytest.mark.usefixtures("celery_app")
def test_relative_spool_dir_in_writable_cwd_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative SPOOL_DIR that can be created in a writable working folder gives no message."""
    monkeypatch.chdir(tmp_path)
    assert run_checks(CELERY_PARSELOG_SPOOL_DIR="spool/nested") == []


# -- warnings ------------------------------------------------------------------------


@pytest.mark.usefixtures("celery_app")
def test_w001_enabled_with_empty_tasks() -> None:
    """Capture on with no TASKS is W001."""
    message = only(
        run_checks(CELERY_PARSELOG_ENABLED=True, CELERY_PARSELOG_TASKS=[]),
        "celery_parselog.W001",
    )
    assert message.level == checks.WARNING
    assert message.obj == "CELERY_PARSELOG_TASKS"


@pytest.mark.usefixtures("celery_app")
def test_no_w001_when_disabled_or_tasks_given() -> None:
    """W001 needs both capture on and TASKS empty."""
    assert run_checks(CELERY_PARSELOG_ENABLED=False, CELERY_PARSELOG_TASKS=[]) == []
    assert run_checks(CELERY_PARSELOG_ENABLED=True, CELERY_PARSELOG_TASKS=["tests.*"]) == []


def registered_functions() -> dict[str, Callable[..., Any]]:
    """Run functions by task name, as a started worker hands them to the check."""

    def bound_run(path: str) -> None:
        """What a bound task's ``run`` looks like once ``self`` is bound."""

    return {"tests.parse": _parse, "tests.bound": bound_run, "other.report": _report}


def test_w002_pattern_matching_no_registered_task() -> None:
    """Each TASKS entry matching no registered task is its own W002."""
    messages = registered_task_problems(
        registered_functions(),
        ("tests.parse", "missing.task", "gone.*"),
        "{task_id}-{attempt}.log",
    )
    assert ids(messages) == ["celery_parselog.W002", "celery_parselog.W002"]
    assert all(m.level == checks.WARNING for m in messages)
    assert all(m.obj == "CELERY_PARSELOG_TASKS" for m in messages)
    assert sorted(m.msg for m in messages) == [
        "CELERY_PARSELOG_TASKS: 'gone.*' matches no registered task.",
        "CELERY_PARSELOG_TASKS: 'missing.task' matches no registered task.",
    ]


def test_w002_not_for_matching_or_malformed_patterns() -> None:
    """Patterns that match a task, and malformed ones (E006's business), give no W002."""
    messages = registered_task_problems(
        registered_functions(),
        ("tests.*", "other.report", "tests.[a", " tests.parse"),
        "{task_id}-{attempt}.log",
    )
    assert messages == []


def test_w002_with_nothing_registered() -> None:
    """With no project task registered, every well-formed pattern is W002."""
    messages = registered_task_problems({}, ("tests.*", "a.b"), "{task_id}-{attempt}.log")
    assert ids(messages) == ["celery_parselog.W002", "celery_parselog.W002"]


def test_registered_task_problems_default_settings() -> None:
    """The test settings' TASKS and the default KEY give no problem for tests.* tasks."""
    assert registered_task_problems(registered_functions(), ("tests.*",), DEFAULT_KEY) == []


def test_registered_task_problems_e002() -> None:
    """A key field a selected registered task lacks is E002, also at worker start."""
    messages = registered_task_problems(
        registered_functions(), ("tests.*",), "{customer}/{task_id}-{attempt}.log"
    )
    message = only(messages, "celery_parselog.E002")
    assert "'tests.bound'" in message.msg
    assert "customer" in message.msg


def test_registered_task_problems_skip_key_functions_and_bad_templates() -> None:
    """A key function or a malformed template gives no E002 (E003 covers the latter)."""
    assert registered_task_problems(registered_functions(), ("tests.*",), _parse) == []
    assert registered_task_problems(registered_functions(), ("tests.*",), "{customer") == []


@pytest.mark.usefixtures("celery_app")
def test_check_settings_reports_w002() -> None:
    """check_settings itself reports a TASKS pattern matching no registered task."""
    message = only(
        run_checks(CELERY_PARSELOG_TASKS=["tests.parse", "missing.task"]), "celery_parselog.W002"
    )
    assert "'missing.task'" in message.msg


# -- several problems, and manage.py check -------------------------------------------


@pytest.mark.usefixtures("celery_app")
def test_problems_accumulate() -> None:
    """Every problem is reported in one run, each with its own id."""
    messages = run_checks(
        CELERY_PARSELOG_LEVEL="LOUD",
        CELERY_PARSELOG_STORAGE="nope",
        CELERY_PARSELOG_FORMAT="%(nosuch)s",
        CELERY_PARSELOG_KEY="{task_name}.log",
        CELERY_PARSELOG_TASKS=["tests.[x"],
        CELERY_PARSELOG_ENABLED="yes",
    )
    assert ids(messages) == [
        "celery_parselog.E001",
        "celery_parselog.E004",
        "celery_parselog.E005",
        "celery_parselog.E006",
        "celery_parselog.E007",
        "celery_parselog.E008",
    ]
    assert {m.id for m in messages if m.level >= checks.ERROR} <= ERROR_IDS


@pytest.mark.usefixtures("celery_app")
def test_check_command_fails_on_error() -> None:
    """``manage.py check`` raises SystemCheckError naming the check id for an error."""
    with (
        override_settings(CELERY_PARSELOG_LEVEL="LOUD"),
        pytest.raises(SystemCheckError, match=r"celery_parselog\.E005"),
    ):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.usefixtures("celery_app")
def test_check_command_with_tag_fails_on_error() -> None:
    """The checks are registered under the ``celery_parselog`` tag."""
    with (
        override_settings(CELERY_PARSELOG_STORAGE="nope"),
        pytest.raises(SystemCheckError, match=r"celery_parselog\.E001"),
    ):
        call_command("check", "--tag", "celery_parselog", stdout=io.StringIO())


@pytest.mark.usefixtures("celery_app")
def test_check_command_passes_with_defaults() -> None:
    """``manage.py check`` reports no issues for the test settings."""
    out = io.StringIO()
    call_command("check", stdout=out, stderr=io.StringIO())
    assert "System check identified no issues" in out.getvalue()


@pytest.mark.usefixtures("celery_app")
def test_check_command_warning_does_not_fail() -> None:
    """A warning alone is shown by ``manage.py check`` but does not fail it."""
    err = io.StringIO()
    with override_settings(CELERY_PARSELOG_ENABLED=True, CELERY_PARSELOG_TASKS=[]):
        call_command("check", stdout=io.StringIO(), stderr=err)
    assert "celery_parselog.W001" in err.getvalue()


# -- every setting, every bad entry --------------------------------------------------

# A bad value for each setting, and the id it must give.
BAD_VALUE: dict[str, tuple[object, str]] = {
    "ENABLED": ("yes", "celery_parselog.E008"),
    "TASKS": ("tests.*", "celery_parselog.E008"),
    "LEVEL": ("LOUD", "celery_parselog.E005"),
    "LOGGERS": ("*", "celery_parselog.E008"),
    "FORMAT": ("%(nosuch)s", "celery_parselog.E007"),
    "COMPRESS": (10, "celery_parselog.E008"),
    "MAX_BYTES": ("128MB", "celery_parselog.E008"),
    "REDACT": (["(unclosed"], "celery_parselog.E011"),
    "STORAGE": ("nope", "celery_parselog.E001"),
    "KEY": ("{task_name}.log", "celery_parselog.E004"),
    "SPOOL_DIR": (42, "celery_parselog.E008"),
    "CHECKPOINT_SECONDS": ("10", "celery_parselog.E008"),
    "UPLOAD_ATTEMPTS": (0, "celery_parselog.E008"),
    "RECOVERY_INTERVAL": (-1, "celery_parselog.E008"),
    "UPLOAD_BACKOFF": ("fast", "celery_parselog.E008"),
    "RECORDS": ("yes", "celery_parselog.E008"),
    "SUBJECT": ("{data_file_id", "celery_parselog.E010"),
    "KEEP_ARGS": (1, "celery_parselog.E008"),
    "DOWNLOAD_EXPIRY": (0, "celery_parselog.E008"),
    "PREVIEW_LINES": (0, "celery_parselog.E008"),
    "METRICS_PORT": ("9808", "celery_parselog.E008"),
    "SUBJECT_URL": (7, "celery_parselog.E008"),
    "FLOWER_URL": ("flower.local", "celery_parselog.E008"),
}


def test_bad_values_cover_every_setting() -> None:
    """BAD_VALUE names exactly the declared settings, so a new one cannot go unchecked."""
    assert set(BAD_VALUE) == {spec.name for spec in SPECS}


@pytest.mark.usefixtures("celery_app")
@pytest.mark.parametrize("name", sorted(BAD_VALUE))
def test_every_setting_is_checked(name: str) -> None:
    """manage.py check validates every setting: a bad value is one error on that setting."""
    value, check_id = BAD_VALUE[name]
    message = only(run_checks(**{PREFIX + name: value}), check_id)
    assert message.level == checks.ERROR
    assert message.obj == PREFIX + name
    assert message.msg.startswith(f"{PREFIX}{name}: ")
    assert message.hint


@pytest.mark.usefixtures("celery_app")
def test_every_bad_redact_entry_is_reported_at_once() -> None:
    """Two unusable REDACT entries are two E011 errors in one run, each naming its entry."""
    messages = run_checks(CELERY_PARSELOG_REDACT=["iban", "email", "(unclosed"])
    assert ids(messages) == ["celery_parselog.E011", "celery_parselog.E011"]
    assert "'iban'" in messages[0].msg
    assert "'(unclosed'" in messages[1].msg
    assert all(message.hint for message in messages)


@pytest.mark.usefixtures("celery_app")
def test_every_bad_setting_is_reported_at_once() -> None:
    """Bad values of many settings are all reported in one run."""
    messages = run_checks(**{PREFIX + name: value for name, (value, _) in BAD_VALUE.items()})
    assert ids(messages) == sorted(check_id for _, check_id in BAD_VALUE.values())


@pytest.mark.usefixtures("celery_app")
def test_key_and_its_fields_problems_together() -> None:
    """An absolute key lacking {attempt} gives both its E003 and its E004."""
    messages = run_checks(CELERY_PARSELOG_KEY="/logs/{task_id}.log")
    assert ids(messages) == ["celery_parselog.E003", "celery_parselog.E004"]


# -- E009 is tried, not guessed ------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
@pytest.mark.usefixtures("celery_app")
def test_e009_folder_nobody_can_create() -> None:
    """A SPOOL_DIR in /proc is E009 even for root, for whom os.access says yes."""
    message = only(run_checks(CELERY_PARSELOG_SPOOL_DIR="/proc/nope"), "celery_parselog.E009")
    assert "'/proc/nope'" in message.msg


@pytest.mark.usefixtures("celery_app")
def test_e009_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    """Checking an existing or a missing spool folder leaves no file and creates no folder."""
    assert run_checks(CELERY_PARSELOG_SPOOL_DIR=tmp_path) == []
    assert run_checks(CELERY_PARSELOG_SPOOL_DIR=tmp_path / "a" / "b") == []
    assert list(tmp_path.iterdir()) == []


# -- the project's tasks, loaded as a worker loads them ------------------------------


@pytest.fixture
def autodiscovering_app() -> Iterator[Celery]:
    """A current Celery app with Django's fixup, whose tasks only autodiscovery imports."""
    sys.modules.pop("tests.unit.checkproj.tasks", None)
    previous = _state._tls.current_app  # type: ignore[attr-defined]
    app = Celery("checkproj", set_as_current=True)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks(["tests.unit.checkproj"])
    try:
        yield app
    finally:
        _state._set_current_app(previous)  # type: ignore[attr-defined]
        app.close()
        sys.modules.pop("tests.unit.checkproj.tasks", None)


MISTAKES = {
    "CELERY_PARSELOG_ENABLED": True,
    "CELERY_PARSELOG_TASKS": ["checkproj.parse", "checkproj.reparse"],
    "CELERY_PARSELOG_KEY": "logs/{datafile_id}/{task_id}-{attempt}.log",
    "CELERY_PARSELOG_SUBJECT": "{data_file}",
    "CELERY_PARSELOG_MAX_BYTES": "128MB",
    "CELERY_PARSELOG_REDACT": ["iban", "(unclosed"],
    "CELERY_PARSELOG_RECOVERY_INTERVAL": "60",
}


def test_check_command_reports_every_mistake(autodiscovering_app: Celery) -> None:
    """manage.py check loads the project's tasks and reports every mistake, with ids and hints."""
    assert "tests.unit.checkproj.tasks" not in sys.modules
    with override_settings(**MISTAKES), pytest.raises(SystemCheckError) as failed:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    report = str(failed.value)
    assert "tests.unit.checkproj.tasks" in sys.modules
    assert "checkproj.parse" in autodiscovering_app.tasks
    for expected in [
        "CELERY_PARSELOG_KEY: (celery_parselog.E002) CELERY_PARSELOG_KEY names datafile_id, "
        "which task 'checkproj.parse' does not have.",
        "CELERY_PARSELOG_SUBJECT: (celery_parselog.E012) CELERY_PARSELOG_SUBJECT names "
        "data_file, which task 'checkproj.parse' does not have.",
        "(celery_parselog.W002) CELERY_PARSELOG_TASKS: 'checkproj.reparse' matches no "
        "registered task.",
        "(celery_parselog.E008) CELERY_PARSELOG_MAX_BYTES: '128MB' is not",
        "(celery_parselog.E008) CELERY_PARSELOG_RECOVERY_INTERVAL: '60' is not",
        "(celery_parselog.E011) CELERY_PARSELOG_REDACT: 'iban'",
        "(celery_parselog.E011) CELERY_PARSELOG_REDACT: '(unclosed'",
        "HINT: Fields are task_name, task_id, attempt, root_id, started and the task's "
        "parameters (data_file_id, reparse_id).",
    ]:
        assert expected in report
    assert report.count("celery_parselog.E") == 6


def test_check_command_passes_once_fixed(autodiscovering_app: Celery) -> None:
    """The same project with the mistakes fixed passes manage.py check."""
    fixed = {
        "CELERY_PARSELOG_ENABLED": True,
        "CELERY_PARSELOG_TASKS": ["checkproj.parse"],
        "CELERY_PARSELOG_KEY": "logs/{data_file_id}/{task_id}-{attempt}.log",
        "CELERY_PARSELOG_SUBJECT": "{data_file_id}",
    }
    out = io.StringIO()
    with override_settings(**fixed):
        call_command("check", stdout=out, stderr=io.StringIO())
    assert "System check identified no issues" in out.getvalue()


def test_e013_task_module_that_cannot_be_imported(autodiscovering_app: Celery) -> None:
    """A task module that fails to import is E013, not a crash of manage.py check."""
    autodiscovering_app.conf.imports = ["tests.unit.checkproj.broken"]
    message = only(check_settings(), "celery_parselog.E013")
    assert "this task module is broken" in message.msg


def test_w003_without_a_celery_app() -> None:
    """With no project Celery app loaded, check says the tasks could not be checked."""
    previous_current = _state._tls.current_app  # type: ignore[attr-defined]
    previous_default = _state.default_app  # type: ignore[attr-defined]
    _state._tls.current_app = None  # type: ignore[attr-defined]
    _state.default_app = None  # type: ignore[attr-defined]
    try:
        message = only(check_settings(), "celery_parselog.W003")
    finally:
        _state._tls.current_app = previous_current  # type: ignore[attr-defined]
        _state.default_app = previous_default  # type: ignore[attr-defined]
    assert message.hint is not None
    assert "__init__.py" in message.hint


@pytest.mark.usefixtures("celery_app")
def test_e012_subject_field_missing_from_selected_task() -> None:
    """A SUBJECT field that a selected task lacks is E012 naming the field and the task."""
    messages = run_checks(CELERY_PARSELOG_TASKS=["tests.parse"], CELERY_PARSELOG_SUBJECT="{pth}")
    message = only(messages, "celery_parselog.E012")
    assert message.obj == "CELERY_PARSELOG_SUBJECT"
    assert "pth" in message.msg
    assert "'tests.parse'" in message.msg


def test_inside_a_starting_worker_the_tasks_are_left_to_the_worker(
    autodiscovering_app: Celery,
) -> None:
    """While a worker's loader imports the tasks, check neither imports nor reads them."""
    autodiscovering_app.loader.worker_initialized = True
    with override_settings(**MISTAKES):
        messages = check_settings()
    assert "tests.unit.checkproj.tasks" not in sys.modules
    assert not autodiscovering_app.finalized  # type: ignore[attr-defined]
    assert not {"celery_parselog.E002", "celery_parselog.E012", "celery_parselog.W002"} & {
        str(m.id) for m in messages
    }
