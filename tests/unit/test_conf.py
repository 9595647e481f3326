"""Unit tests for celery_parselog.conf: every setting, its default, validation and laziness."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from pytest_django.fixtures import Settings as SettingsWrapper

from celery_parselog.conf import (
    DEFAULT_FORMAT,
    DEFAULT_KEY,
    PREFIX,
    SPECS,
    InvalidSettings,
    ParselogSettings,
    SettingError,
    parselog_settings,
)
from celery_parselog.keys import KeyContext
from celery_parselog.redaction import DEFAULT_REDACT

NOT_CALLABLE = "a module attribute that is not callable"


def make_key(context: KeyContext) -> str:
    """A key function importable by dotted path."""
    return f"custom/{context.task_id}-{context.attempt}.log"


# The property that exposes each setting, by the setting's name without the prefix.
PROPERTY_FOR = {
    "ENABLED": "enabled",
    "TASKS": "tasks",
    "LEVEL": "level",
    "LOGGERS": "loggers",
    "FORMAT": "format",
    "COMPRESS": "compress_level",
    "STORAGE": "storage",
    "KEY": "key",
    "SPOOL_DIR": "spool_dir",
    "UPLOAD_ATTEMPTS": "upload_attempts",
    "UPLOAD_BACKOFF": "upload_backoff",
    "REDACT": "redact",
    "CHECKPOINT_SECONDS": "checkpoint_seconds",
    "MAX_BYTES": "max_bytes",
    "RECOVERY_INTERVAL": "recovery_interval",
    "RECORDS": "records",
    "SUBJECT": "subject",
    "KEEP_ARGS": "keep_args",
    "DOWNLOAD_EXPIRY": "download_expiry",
    "PREVIEW_LINES": "preview_lines",
    "METRICS_PORT": "metrics_port",
    "SUBJECT_URL": "subject_url",
    "FLOWER_URL": "flower_url",
}

# A valid value unlike the default and unlike tests/settings.py, and what the property gives.
NON_DEFAULT: dict[str, tuple[Any, Any]] = {
    "ENABLED": (True, True),
    "TASKS": (["billing.invoice", "parsers.*"], ("billing.invoice", "parsers.*")),
    "LEVEL": ("WARNING", logging.WARNING),
    "LOGGERS": (["celery", "-celery.beat"], ("celery", "-celery.beat")),
    "FORMAT": ("%(levelname)s %(message)s", "%(levelname)s %(message)s"),
    "COMPRESS": (3, 3),
    "STORAGE": ("staticfiles", "staticfiles"),
    "KEY": ("other/{task_id}-{attempt}.txt", "other/{task_id}-{attempt}.txt"),
    "SPOOL_DIR": ("/srv/parselog-spool", Path("/srv/parselog-spool")),
    "UPLOAD_ATTEMPTS": (7, 7),
    "UPLOAD_BACKOFF": (2.5, 2.5),
    "REDACT": (["email", r"case-\d{6}"], ("email", r"case-\d{6}")),
    "CHECKPOINT_SECONDS": (30, 30.0),
    "MAX_BYTES": (1_000_000, 1_000_000),
    "RECOVERY_INTERVAL": (15, 15.0),
    "RECORDS": (False, False),
    "SUBJECT": ("{data_file_id}", "{data_file_id}"),
    "KEEP_ARGS": (False, False),
    "DOWNLOAD_EXPIRY": (60, 60),
    "PREVIEW_LINES": (20, 20),
    "METRICS_PORT": (9808, 9808),
    "SUBJECT_URL": ("/files/{subject}/", "/files/{subject}/"),
    "FLOWER_URL": ("http://flower.local:5555/", "http://flower.local:5555"),
}

# What each property gives when its setting is absent.
DEFAULT_VALUE: dict[str, Any] = {
    "ENABLED": False,
    "TASKS": (),
    "LEVEL": logging.INFO,
    "LOGGERS": ("*",),
    "FORMAT": DEFAULT_FORMAT,
    "COMPRESS": 6,
    "STORAGE": "default",
    "KEY": DEFAULT_KEY,
    "SPOOL_DIR": Path(tempfile.gettempdir()) / f"celery-parselog-{os.geteuid()}",
    "UPLOAD_ATTEMPTS": 3,
    "UPLOAD_BACKOFF": 0.5,
    "REDACT": tuple(DEFAULT_REDACT),
    "CHECKPOINT_SECONDS": 60.0,
    "MAX_BYTES": 128 * 1024 * 1024,
    "RECOVERY_INTERVAL": 60.0,
    "RECORDS": True,
    "SUBJECT": None,
    "KEEP_ARGS": True,
    "DOWNLOAD_EXPIRY": 300,
    "PREVIEW_LINES": 50,
    "METRICS_PORT": None,
    "SUBJECT_URL": None,
    "FLOWER_URL": None,
}

SPEC_NAMES = [spec.name for spec in SPECS]


def snapshot_error_ids() -> list[str]:
    """The check ids of the errors that a snapshot of the current settings must raise."""
    with pytest.raises(InvalidSettings) as caught:
        ParselogSettings().snapshot()
    return [error.check_id for error in caught.value.errors]


def read_all() -> dict[str, Any]:
    """Every property of a fresh ParselogSettings, by setting name."""
    current = ParselogSettings()
    return {name: getattr(current, prop) for name, prop in PROPERTY_FOR.items()}


# -- one property per setting, reading exactly its key -------------------------------


def test_every_spec_has_a_property_and_test_values() -> None:
    """The tables here cover exactly SPECS, and each declaration is its own attribute."""
    assert set(PROPERTY_FOR) == set(SPEC_NAMES)
    assert set(NON_DEFAULT) == set(SPEC_NAMES)
    assert set(DEFAULT_VALUE) == set(SPEC_NAMES)
    assert len(SPEC_NAMES) == len(set(SPEC_NAMES))
    for spec in SPECS:
        assert PROPERTY_FOR[spec.name] == spec.attribute
        assert getattr(ParselogSettings, spec.attribute) is spec


def test_spec_keys_are_prefixed() -> None:
    """Each spec's key is its name with the CELERY_PARSELOG_ prefix."""
    for spec in SPECS:
        assert spec.key == f"CELERY_PARSELOG_{spec.name}"
        assert spec.doc


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_property_reads_exactly_its_key(name: str) -> None:
    """Setting one key changes its own property and no other."""
    value, expected = NON_DEFAULT[name]
    baseline = read_all()
    assert baseline[name] != expected  # the test value really differs
    with override_settings(**{PREFIX + name: value}):
        changed = read_all()
    assert changed[name] == expected
    assert {k: v for k, v in changed.items() if k != name} == {
        k: v for k, v in baseline.items() if k != name
    }


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_property_default_when_key_absent(name: str, settings: SettingsWrapper) -> None:
    """With its key absent, each property gives the declared default."""
    delattr(settings, PREFIX + name)
    assert getattr(ParselogSettings(), PROPERTY_FOR[name]) == DEFAULT_VALUE[name]


def test_spec_defaults_match_property_defaults() -> None:
    """SPECS declares the raw defaults the properties turn into their values."""
    defaults = {spec.name: spec.default for spec in SPECS}
    # The same as the properties give, but where a property converts its raw value.
    assert defaults == {
        **DEFAULT_VALUE,
        "TASKS": [],
        "LEVEL": "INFO",
        "LOGGERS": ["*"],
        "COMPRESS": True,
        "SPOOL_DIR": None,
        "REDACT": list(DEFAULT_REDACT),
        "CHECKPOINT_SECONDS": 60,
        "RECOVERY_INTERVAL": 60,
    }


# -- read lazily ---------------------------------------------------------------------


def test_module_instance_reads_on_each_access() -> None:
    """The shared parselog_settings follows override_settings in and out."""
    assert parselog_settings.level == logging.INFO
    with override_settings(CELERY_PARSELOG_LEVEL="ERROR"):
        assert parselog_settings.level == logging.ERROR
        with override_settings(CELERY_PARSELOG_LEVEL="DEBUG"):
            assert parselog_settings.level == logging.DEBUG
        assert parselog_settings.level == logging.ERROR
    assert parselog_settings.level == logging.INFO


def test_settings_set_late_take_effect(settings: SettingsWrapper) -> None:
    """A setting assigned after the settings object exists is seen on next access."""
    reader = ParselogSettings()
    assert reader.enabled is False
    settings.CELERY_PARSELOG_ENABLED = True
    assert reader.enabled is True


def test_invalid_value_only_fails_when_read() -> None:
    """A bad value for one setting does not stop the others from being read."""
    with override_settings(CELERY_PARSELOG_LEVEL="LOUD"):
        reader = ParselogSettings()
        assert reader.storage == "default"
        with pytest.raises(SettingError):
            _ = reader.level


# -- validation errors ---------------------------------------------------------------


E003 = "celery_parselog.E003"
E005 = "celery_parselog.E005"
E008 = "celery_parselog.E008"


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("ENABLED", "yes", E008),
        ("ENABLED", 1, E008),
        ("ENABLED", None, E008),
        ("TASKS", "tests.*", E008),
        ("TASKS", ["ok", 1], E008),
        ("TASKS", None, E008),
        ("TASKS", {"tests.*"}, E008),
        ("LEVEL", "LOUD", E005),
        ("LEVEL", -1, E005),
        ("LEVEL", True, E005),
        ("LEVEL", 1.5, E005),
        ("LEVEL", None, E005),
        ("LEVEL", "10", E005),
        ("LOGGERS", "*", E008),
        ("LOGGERS", [""], E008),
        ("LOGGERS", ["-"], E008),
        ("LOGGERS", [" celery"], E008),
        ("LOGGERS", [1], E008),
        ("FORMAT", "", E008),
        ("FORMAT", 5, E008),
        ("FORMAT", None, E008),
        ("COMPRESS", 10, E008),
        ("COMPRESS", 0, E008),
        ("COMPRESS", -1, E008),
        ("COMPRESS", "6", E008),
        ("COMPRESS", 6.0, E008),
        ("COMPRESS", None, E008),
        ("STORAGE", "", E008),
        ("STORAGE", None, E008),
        ("KEY", 42, E008),
        ("KEY", "", E008),
        ("KEY", None, E008),
        ("KEY", "tests.unit.test_conf.NOT_CALLABLE", E008),
        ("KEY", "no_such_module_for_parselog.make_key", E003),
        ("KEY", "tests.unit.test_conf.no_such_function", E003),
        ("SPOOL_DIR", 42, E008),
        ("SPOOL_DIR", "", E008),
        ("UPLOAD_ATTEMPTS", 0, E008),
        ("UPLOAD_ATTEMPTS", 21, E008),
        ("UPLOAD_ATTEMPTS", True, E008),
        ("UPLOAD_ATTEMPTS", 2.0, E008),
        ("UPLOAD_ATTEMPTS", "3", E008),
        ("UPLOAD_BACKOFF", -0.1, E008),
        ("UPLOAD_BACKOFF", 60.5, E008),
        ("UPLOAD_BACKOFF", True, E008),
        ("UPLOAD_BACKOFF", "1", E008),
        ("UPLOAD_BACKOFF", math.nan, E008),
        ("UPLOAD_BACKOFF", math.inf, E008),
        ("RECOVERY_INTERVAL", -1, E008),
        ("REDACT", "email", E008),
        ("REDACT", ["emial"], "celery_parselog.E011"),
        ("REDACT", ["(unclosed"], "celery_parselog.E011"),
        ("CHECKPOINT_SECONDS", -5, E008),
        ("CHECKPOINT_SECONDS", math.nan, E008),
        ("CHECKPOINT_SECONDS", "10", E008),
        ("MAX_BYTES", -1, E008),
        ("MAX_BYTES", 1000, E008),
        ("MAX_BYTES", 1.5e9, E008),
        ("MAX_BYTES", True, E008),
        ("RECOVERY_INTERVAL", math.nan, E008),
        ("RECOVERY_INTERVAL", "60", E008),
        ("RECOVERY_INTERVAL", False, E008),
        ("RECORDS", "yes", E008),
        ("RECORDS", None, E008),
        ("SUBJECT", 7, E008),
        ("SUBJECT", ["{data_file_id}"], E008),
        ("KEEP_ARGS", 1, E008),
        ("KEEP_ARGS", None, E008),
        ("DOWNLOAD_EXPIRY", 0, E008),
        ("DOWNLOAD_EXPIRY", 604801, E008),
        ("DOWNLOAD_EXPIRY", 30.5, E008),
        ("DOWNLOAD_EXPIRY", True, E008),
        ("DOWNLOAD_EXPIRY", "300", E008),
        ("PREVIEW_LINES", 0, E008),
        ("PREVIEW_LINES", 5001, E008),
        ("PREVIEW_LINES", False, E008),
        ("PREVIEW_LINES", "50", E008),
        ("METRICS_PORT", 0, E008),
        ("METRICS_PORT", 70000, E008),
        ("METRICS_PORT", "9808", E008),
        ("SUBJECT_URL", 7, E008),
        ("SUBJECT_URL", "no.such.module.link", E008),
        ("FLOWER_URL", "flower.local", E008),
    ],
)
def test_setting_error_names_the_key(name: str, value: object, check_id: str) -> None:
    """A bad value raises SettingError (ImproperlyConfigured) naming the key, with id and hint."""
    key = PREFIX + name
    with override_settings(**{key: value}), pytest.raises(SettingError) as caught:
        getattr(ParselogSettings(), PROPERTY_FOR[name])
    error = caught.value
    assert isinstance(error, ImproperlyConfigured)
    assert error.key == key
    assert error.message.startswith(f"{key}: ")
    assert error.check_id == check_id
    assert error.hint
    assert str(error) == f"{error.message} ({error.hint})"
    assert key in str(error)


def test_setting_error_is_improperly_configured() -> None:
    """SettingError subclasses Django's ImproperlyConfigured."""
    assert issubclass(SettingError, ImproperlyConfigured)


def test_level_error_message() -> None:
    """An unknown level names CELERY_PARSELOG_LEVEL and the bad value."""
    with (
        override_settings(CELERY_PARSELOG_LEVEL="LOUD"),
        pytest.raises(SettingError, match=r"^CELERY_PARSELOG_LEVEL: 'LOUD' is not a logging level"),
    ):
        _ = ParselogSettings().level


# -- accepted values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("DEBUG", logging.DEBUG),
        ("debug", logging.DEBUG),
        ("WARN", logging.WARNING),
        ("CRITICAL", logging.CRITICAL),
        (0, 0),
        (15, 15),
    ],
)
def test_level_accepts_names_and_numbers(value: object, level: int) -> None:
    """LEVEL accepts level names in any case and non-negative numbers."""
    with override_settings(CELERY_PARSELOG_LEVEL=value):
        assert ParselogSettings().level == level


@pytest.mark.parametrize(
    ("value", "level"),
    [(True, 6), (False, 0), *((n, n) for n in range(1, 10))],
)
def test_compress_levels(value: object, level: int) -> None:
    """COMPRESS True is level 6, False is 0 (off), and 1 to 9 pick that level."""
    with override_settings(CELERY_PARSELOG_COMPRESS=value):
        assert ParselogSettings().compress_level == level


def test_compress_ten_is_an_error() -> None:
    """COMPRESS 10 is beyond gzip's levels and raises SettingError naming the key."""
    with (
        override_settings(CELERY_PARSELOG_COMPRESS=10),
        pytest.raises(SettingError, match="CELERY_PARSELOG_COMPRESS"),
    ):
        _ = ParselogSettings().compress_level


def test_key_dotted_path_imports_the_function() -> None:
    """A dotted path without braces is imported and the function itself is returned."""
    with override_settings(CELERY_PARSELOG_KEY="tests.unit.test_conf.make_key"):
        assert ParselogSettings().key is make_key


def test_key_callable_is_returned_as_is() -> None:
    """A callable set directly is returned unchanged."""
    with override_settings(CELERY_PARSELOG_KEY=make_key):
        assert ParselogSettings().key is make_key


@pytest.mark.parametrize(
    "template",
    ["logs.{task_id}.{attempt}", "a.b/{task_id}-{attempt}", "{task_id}{attempt}"],
)
def test_key_non_dotted_paths_are_templates(template: str) -> None:
    """Strings with braces or slashes are taken as templates, not imported."""
    with override_settings(CELERY_PARSELOG_KEY=template):
        assert ParselogSettings().key == template


@pytest.mark.parametrize("template", ["logs/run.log", "plainname"])
def test_key_without_fields_is_a_template_lacking_them(template: str) -> None:
    """A string without a dot path is read as a template; the snapshot says it lacks fields."""
    with override_settings(CELERY_PARSELOG_KEY=template):
        assert ParselogSettings().key == template
        assert snapshot_error_ids() == ["celery_parselog.E004"]


def test_key_unimportable_error_names_key_and_path() -> None:
    """An unimportable key function is an E003 SettingError naming the key and the path."""
    with (
        override_settings(CELERY_PARSELOG_KEY="no_such_module_for_parselog.make_key"),
        pytest.raises(SettingError) as caught,
    ):
        _ = ParselogSettings().key
    assert caught.value.check_id == E003
    assert "CELERY_PARSELOG_KEY" in str(caught.value)
    assert "no_such_module_for_parselog.make_key" in str(caught.value)
    assert isinstance(caught.value.__cause__, ImportError)


def test_spool_dir_accepts_path_and_none() -> None:
    """SPOOL_DIR takes a Path or str; None means celery-parselog in the temporary folder."""
    with override_settings(CELERY_PARSELOG_SPOOL_DIR=Path("/srv/spool")):
        assert ParselogSettings().spool_dir == Path("/srv/spool")
    with override_settings(CELERY_PARSELOG_SPOOL_DIR=None):
        assert (
            ParselogSettings().spool_dir
            == Path(tempfile.gettempdir()) / f"celery-parselog-{os.geteuid()}"
        )


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (20, 20)])
def test_upload_attempts_bounds(value: int, expected: int) -> None:
    """UPLOAD_ATTEMPTS accepts 1 through 20."""
    with override_settings(CELERY_PARSELOG_UPLOAD_ATTEMPTS=value):
        assert ParselogSettings().upload_attempts == expected


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (60, 60.0), (2, 2.0), (0.25, 0.25)])
def test_upload_backoff_is_float(value: float, expected: float) -> None:
    """UPLOAD_BACKOFF accepts 0 to 60 seconds and always returns a float."""
    with override_settings(CELERY_PARSELOG_UPLOAD_BACKOFF=value):
        backoff = ParselogSettings().upload_backoff
    assert backoff == expected
    assert type(backoff) is float


def test_tasks_and_loggers_accept_tuples() -> None:
    """TASKS and LOGGERS accept tuples as well as lists, and return tuples."""
    with override_settings(CELERY_PARSELOG_TASKS=("a.b",), CELERY_PARSELOG_LOGGERS=("*", "-noisy")):
        reader = ParselogSettings()
        assert reader.tasks == ("a.b",)
        assert reader.loggers == ("*", "-noisy")


@pytest.mark.parametrize("value", [None, ""])
def test_subject_empty_or_none_means_no_subject(value: object) -> None:
    """SUBJECT None or "" both mean runs get no subject."""
    with override_settings(CELERY_PARSELOG_SUBJECT=value):
        assert ParselogSettings().subject is None


# -- one declaration per setting, and the snapshot ------------------------------------


def test_snapshot_keeps_the_values_it_was_taken_with(settings: SettingsWrapper) -> None:
    """A snapshot's values are read once: later changes of the settings do not reach it."""
    settings.CELERY_PARSELOG_LEVEL = "WARNING"
    snapshot = ParselogSettings().snapshot()
    settings.CELERY_PARSELOG_LEVEL = "DEBUG"
    settings.CELERY_PARSELOG_MAX_BYTES = "128MB"
    assert snapshot.level == logging.WARNING
    assert snapshot.max_bytes == 128 * 1024 * 1024
    assert ParselogSettings().level == logging.DEBUG


def test_snapshot_values_cannot_be_assigned() -> None:
    """A setting is never written through the settings object."""
    snapshot = ParselogSettings().snapshot()
    with pytest.raises(AttributeError, match="CELERY_PARSELOG_LEVEL"):
        setattr(snapshot, "level", 10)  # noqa: B010 - what a careless caller would do


def test_snapshot_lists_every_problem() -> None:
    """An invalid snapshot raises InvalidSettings carrying every error, each with its id."""
    with (
        override_settings(
            CELERY_PARSELOG_MAX_BYTES="128MB",
            CELERY_PARSELOG_REDACT=["iban", "(unclosed"],
            CELERY_PARSELOG_CHECKPOINT_SECONDS="10",
        ),
        pytest.raises(InvalidSettings) as caught,
    ):
        ParselogSettings().snapshot()
    assert isinstance(caught.value, ImproperlyConfigured)
    assert [(e.key, e.check_id) for e in caught.value.errors] == [
        ("CELERY_PARSELOG_MAX_BYTES", "celery_parselog.E008"),
        ("CELERY_PARSELOG_REDACT", "celery_parselog.E011"),
        ("CELERY_PARSELOG_REDACT", "celery_parselog.E011"),
        ("CELERY_PARSELOG_CHECKPOINT_SECONDS", "celery_parselog.E008"),
    ]


def test_reading_a_setting_with_two_bad_entries_carries_both() -> None:
    """The SettingError of REDACT with two bad entries is the first and lists both."""
    with (
        override_settings(CELERY_PARSELOG_REDACT=["iban", "(unclosed"]),
        pytest.raises(SettingError) as caught,
    ):
        _ = ParselogSettings().redact
    assert "'iban'" in caught.value.message
    assert len(caught.value.errors) == 2
    assert "'(unclosed'" in caught.value.errors[1].message


def test_snapshot_probes_the_spool_folder(tmp_path: Path) -> None:
    """A snapshot tries the spool folder (E009); a plain read of the setting does not."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with override_settings(CELERY_PARSELOG_SPOOL_DIR=blocker):
        assert ParselogSettings().spool_dir == blocker
        assert snapshot_error_ids() == ["celery_parselog.E009"]


def test_capture_config_from_a_snapshot() -> None:
    """The worker's CaptureConfig is built from a snapshot with the same property names."""
    from celery_parselog.receivers import CaptureConfig

    with override_settings(CELERY_PARSELOG_LEVEL="ERROR", CELERY_PARSELOG_COMPRESS=3):
        config = CaptureConfig.from_settings(ParselogSettings().snapshot())
    assert config.levelno == logging.ERROR
    assert config.compress_level == 3
