"""Unit tests for celery_parselog.formatting: text and JSON-lines formatters."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest

from celery_parselog.conf import DEFAULT_FORMAT
from celery_parselog.formatting import (
    JsonLinesFormatter,
    TextFormatter,
    build_formatter,
    format_problem,
)

# 2024-01-02T03:04:05.123Z
CREATED = 1704164645.123
TASK_ID = "0f8e4c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b"
TASK_NAME = "tests.parse"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def make_record(
    msg: str = "hello %s",
    args: tuple[Any, ...] = ("world",),
    *,
    level: int = logging.INFO,
    name: str = "tests.formatting",
    exc_info: ExcInfo | None = None,
    extra: dict[str, Any] | None = None,
) -> logging.LogRecord:
    """A record made the way a Logger makes it, at a fixed creation time."""
    record = logging.getLogger(name).makeRecord(
        name, level, __file__, 10, msg, args, exc_info, func="f", extra=extra
    )
    record.created = CREATED
    record.msecs = 123.0
    return record


def current_exc_info() -> ExcInfo:
    """The exc_info of a freshly raised and caught ValueError."""
    try:
        raise ValueError("bad input")
    except ValueError:
        info = sys.exc_info()
    assert info[0] is not None
    assert info[1] is not None
    return info[0], info[1], info[2]


@pytest.fixture
def local_time_not_utc() -> Iterator[None]:
    """Run with the process's local time zone nine hours east of UTC."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "XYZ-9"
    time.tzset()
    try:
        assert time.localtime(CREATED).tm_hour == 12  # the zone change took effect
        yield
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()


# -- TextFormatter -------------------------------------------------------------------


@pytest.mark.usefixtures("local_time_not_utc")
def test_text_asctime_is_utc_iso_with_milliseconds_and_z() -> None:
    """``%(asctime)s`` is ISO 8601 in UTC with milliseconds and a ``Z``, whatever the local zone."""
    formatter = TextFormatter("%(asctime)s %(message)s", task_id=TASK_ID, task_name=TASK_NAME)
    assert formatter.format(make_record()) == "2024-01-02T03:04:05.123Z hello world"


def test_text_default_format() -> None:
    """The default format renders time, level, logger and message."""
    formatter = TextFormatter(DEFAULT_FORMAT, task_id=TASK_ID, task_name=TASK_NAME)
    assert (
        formatter.format(make_record(level=logging.WARNING))
        == "2024-01-02T03:04:05.123Z WARNING tests.formatting: hello world"
    )


def test_text_task_fields() -> None:
    """``%(task_id)s`` and ``%(task_name)s`` render the run's id and task name."""
    formatter = TextFormatter(
        "%(asctime)s [%(task_name)s:%(task_id)s] %(levelname)s %(message)s",
        task_id=TASK_ID,
        task_name=TASK_NAME,
    )
    assert (
        formatter.format(make_record())
        == f"2024-01-02T03:04:05.123Z [{TASK_NAME}:{TASK_ID}] INFO hello world"
    )


def test_text_task_fields_do_not_mutate_record() -> None:
    """Formatting with task fields sets no ``task_id``/``task_name`` attribute on the record."""
    formatter = TextFormatter("%(task_id)s %(task_name)s %(message)s", task_id="T", task_name="N")
    record = make_record()
    assert formatter.format(record) == "T N hello world"
    assert "task_id" not in record.__dict__
    assert "task_name" not in record.__dict__
    # Another handler's formatter that knows nothing of task fields still fails on them.
    with pytest.raises(ValueError, match="task_id"):
        logging.Formatter("%(task_id)s").format(record)


def test_text_task_fields_leave_record_attribute_alone() -> None:
    """A record carrying its own ``task_id`` keeps it; the formatter's value is written."""
    formatter = TextFormatter("%(task_id)s|%(message)s", task_id="mine", task_name="N")
    record = make_record(extra={"task_id": "theirs"})
    assert formatter.format(record) == "mine|hello world"
    assert record.__dict__["task_id"] == "theirs"
    assert logging.Formatter("%(task_id)s").format(record) == "theirs"


def test_text_record_formats_the_same_for_other_handlers() -> None:
    """After TextFormatter, another formatter sees the record exactly as it would have."""
    fresh = make_record()
    expected = logging.Formatter("%(levelname)s:%(name)s:%(message)s").format(fresh)
    record = make_record()
    TextFormatter("%(task_id)s %(message)s", task_id="T", task_name="N").format(record)
    assert logging.Formatter("%(levelname)s:%(name)s:%(message)s").format(record) == expected


def test_text_appends_exception() -> None:
    """A record with exc_info gets the traceback after its line, like logging.Formatter."""
    formatter = TextFormatter("%(task_id)s %(message)s", task_id="T", task_name="N")
    text = formatter.format(make_record("failed", (), exc_info=current_exc_info()))
    first, *rest = text.splitlines()
    assert first == "T failed"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: bad input"


def test_text_percent_escape_with_task_fields() -> None:
    """``%%`` is a literal percent in a format that also uses task fields."""
    formatter = TextFormatter("100%% %(task_id)s", task_id="T", task_name="N")
    assert formatter.format(make_record()) == "100% T"


# -- JsonLinesFormatter --------------------------------------------------------------


def json_line(record: logging.LogRecord) -> dict[str, Any]:
    """Format one record with the JSON formatter and parse it back."""
    text = JsonLinesFormatter(task_id=TASK_ID, task_name=TASK_NAME).format(record)
    assert "\n" not in text
    parsed = json.loads(text)
    assert isinstance(parsed, dict)
    return parsed


@pytest.mark.usefixtures("local_time_not_utc")
def test_json_line_fields() -> None:
    """A JSON line holds UTC time with milliseconds, level, logger, message and task fields."""
    line = json_line(make_record(level=logging.ERROR))
    assert line == {
        "ts": "2024-01-02T03:04:05.123+00:00",
        "level": "ERROR",
        "logger": "tests.formatting",
        "message": "hello world",
        "task_id": TASK_ID,
        "task_name": TASK_NAME,
    }


def test_json_exception_text() -> None:
    """A record with exc_info carries the formatted traceback in ``exc_text``."""
    line = json_line(make_record("failed", (), exc_info=current_exc_info()))
    assert line["message"] == "failed"
    assert line["exc_text"].startswith("Traceback (most recent call last):")
    assert line["exc_text"].endswith("ValueError: bad input")


def test_json_uses_cached_exc_text() -> None:
    """A record whose exc_text is already set uses that text."""
    record = make_record()
    record.exc_text = "cached traceback"
    assert json_line(record)["exc_text"] == "cached traceback"


def test_json_no_exception_no_exc_text() -> None:
    """A record without an exception has no ``exc_text`` or ``stack_info`` key."""
    line = json_line(make_record())
    assert "exc_text" not in line
    assert "stack_info" not in line


def test_json_stack_info() -> None:
    """A record with stack_info carries it in ``stack_info``."""
    record = make_record()
    record.stack_info = "Stack (most recent call last):\n  frame"
    assert json_line(record)["stack_info"] == "Stack (most recent call last):\n  frame"


def test_json_extra_fields() -> None:
    """Attributes given with ``extra=`` appear under ``extra``; standard ones do not."""
    line = json_line(make_record(extra={"customer": "acme", "rows": 3, "ok": True}))
    assert line["extra"] == {"customer": "acme", "rows": 3, "ok": True}


def test_json_extra_ignores_private_and_formatting_attributes() -> None:
    """Underscore attributes and ``message``/``asctime`` left by other formatters are not extras."""
    record = make_record(extra={"_private": 1, "visible": 2})
    logging.Formatter("%(asctime)s %(message)s").format(record)  # sets message and asctime
    assert json_line(record)["extra"] == {"visible": 2}


def test_json_no_extra_key_without_extras() -> None:
    """A record without extras has no ``extra`` key."""
    assert "extra" not in json_line(make_record())


def test_json_non_ascii_kept() -> None:
    """Non-ASCII text is written as is, not escaped."""
    text = JsonLinesFormatter(task_id="T", task_name="N").format(make_record("héllo ☃", ()))
    assert "héllo ☃" in text


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _Custom:
    def __repr__(self) -> str:
        return "<Custom 7>"


def test_json_unrepresentable_extras_do_not_break_the_line() -> None:
    """Extras JSON cannot encode are written by repr, or a placeholder if repr fails."""
    line = json_line(make_record(extra={"obj": _Custom(), "broken": _BrokenRepr(), "items": {1}}))
    assert line["message"] == "hello world"
    assert line["extra"] == {
        "obj": "<Custom 7>",
        "broken": "<unrepresentable _BrokenRepr>",
        "items": "{1}",
    }


@pytest.mark.parametrize("kind", ["tuple-keys", "circular"])
def test_json_extras_json_rejects_do_not_break_the_line(kind: str) -> None:
    """Extras whose structure JSON rejects still leave a line with the message."""
    value: Any
    if kind == "tuple-keys":
        value = {(1, 2): "pair"}
    else:
        value = []
        value.append(value)
    line = json_line(make_record(extra={"data": value}))
    assert line["message"] == "hello world"


def test_json_does_not_add_attributes_to_record() -> None:
    """Formatting a record without an exception leaves its attributes unchanged."""
    record = make_record(extra={"customer": "acme"})
    before = dict(record.__dict__)
    json_line(record)
    assert record.__dict__ == before


# -- build_formatter and format_problem ----------------------------------------------


def test_build_formatter_json() -> None:
    """``"json"`` builds a JSON-lines formatter bound to the run."""
    formatter = build_formatter("json", task_id=TASK_ID, task_name=TASK_NAME)
    assert isinstance(formatter, JsonLinesFormatter)
    assert json.loads(formatter.format(make_record()))["task_id"] == TASK_ID


def test_build_formatter_text() -> None:
    """Any other string builds a TextFormatter with that format."""
    formatter = build_formatter("%(task_name)s %(message)s", task_id=TASK_ID, task_name=TASK_NAME)
    assert isinstance(formatter, TextFormatter)
    assert formatter.format(make_record()) == f"{TASK_NAME} hello world"


@pytest.mark.parametrize(
    "fmt",
    [
        "json",
        DEFAULT_FORMAT,
        "%(message)s",
        "%(task_id)s %(task_name)s %(message)s",
        "%(levelname)-8s %(name)s %(lineno)d %(message)s",
        "%(created)f %(msecs)03d %(message)s",
        "100%% %(message)s",
    ],
)
def test_format_problem_none_for_good_formats(fmt: str) -> None:
    """Formats that can format a record have no problem."""
    assert format_problem(fmt) is None


@pytest.mark.parametrize(
    "fmt",
    [
        "%(nosuch)s",
        "no fields at all",
        "%(message)d",
        "%(message)s %(task_id)",
        "%(message)s %",
        "%(task_name)d",
    ],
)
def test_format_problem_for_bad_formats(fmt: str) -> None:
    """Formats that cannot format a record are reported, naming the format."""
    problem = format_problem(fmt)
    assert problem is not None
    assert problem.startswith(f"{fmt!r} cannot format a record: ")
