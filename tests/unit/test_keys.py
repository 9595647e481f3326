"""Unit tests for celery_parselog.keys: rendering, sanitizing and normalizing storage keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from celery_parselog.keys import (
    KeyContext,
    KeyRenderError,
    bind_arguments,
    normalize_key,
    render_key,
    sanitize_component,
    template_fields,
)
from celery_parselog.redaction import DEFAULT_REDACT, Redactor

TASK_ID = "0f8e4c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b"
STARTED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def make_context(
    *,
    arguments: Mapping[str, Any] | None = None,
    task_id: str = TASK_ID,
    attempt: int = 1,
    root_id: str | None = None,
    task_name: str = "tests.parse",
) -> KeyContext:
    """A KeyContext for one run of ``tests.parse`` started at a fixed time."""
    return KeyContext(
        task_name=task_name,
        task_id=task_id,
        attempt=attempt,
        root_id=root_id,
        started=STARTED,
        arguments=dict(arguments or {}),
    )


def plain_key(template: Any, **context: Any) -> str:
    """The uncompressed key ``template`` renders for a run of ``make_context(**context)``."""
    return render_key(template, make_context(**context), compressed=False)


def segments(key: str) -> list[str]:
    """The ``/``-separated parts of a key."""
    return key.split("/")


class BrokenFormat:
    """A value whose ``__format__`` raises."""

    def __format__(self, spec: str) -> str:
        raise RuntimeError("no format")


class BrokenStr:
    """A value whose ``__str__`` and ``__repr__`` raise (default ``format`` calls ``str``)."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


# -- templates: fixed fields ---------------------------------------------------------


def test_template_renders_fixed_fields() -> None:
    """A template is filled with task name, task id, attempt and root id."""
    key = plain_key("{task_name}/{root_id}/{task_id}-{attempt}.log", attempt=3, root_id="root-7")
    assert key == f"tests.parse/root-7/{TASK_ID}-3.log"


def test_template_root_id_falls_back_to_task_id() -> None:
    """Without a root id, ``{root_id}`` renders the run's own task id."""
    key = plain_key("{root_id}/{task_id}-{attempt}.log")
    assert key == f"{TASK_ID}/{TASK_ID}-1.log"


def test_started_without_spec_uses_compact_utc_stamp() -> None:
    """``{started}`` without a format spec renders as ``%Y%m%dT%H%M%SZ``."""
    key = plain_key("{started}/{task_id}-{attempt}.log")
    assert key == f"20240102T030405Z/{TASK_ID}-1.log"


def test_started_with_spec_keeps_slashes() -> None:
    """``{started:%Y/%m/%d}`` is trusted, so its slashes make folders."""
    key = plain_key("logs/{started:%Y/%m/%d}/{task_id}-{attempt}.log")
    assert key == f"logs/2024/01/02/{TASK_ID}-1.log"
    assert segments(key) == ["logs", "2024", "01", "02", f"{TASK_ID}-1.log"]


def test_started_spec_loses_control_characters() -> None:
    """Control characters in the ``started`` format spec are removed from the key."""
    key = plain_key("logs/{started:%Y\x01\x7f-%H}/{task_id}-{attempt}.log")
    assert key == f"logs/2024-03/{TASK_ID}-1.log"


def test_default_template_renders() -> None:
    """The shipped default template gives the documented layout."""
    from celery_parselog.conf import DEFAULT_KEY

    key = render_key(DEFAULT_KEY, make_context(attempt=2), compressed=True)
    assert key == f"parselog/tests.parse/2024/01/02/{TASK_ID}-2.log.gz"


def test_arguments_cannot_shadow_fixed_fields() -> None:
    """A task parameter named like a fixed field does not replace the run's real value."""
    context = make_context(arguments={"task_id": "../evil", "attempt": 99, "task_name": "x"})
    key = render_key("{task_name}/{task_id}-{attempt}.log", context, compressed=False)
    assert key == f"tests.parse/{TASK_ID}-1.log"


# -- templates: task parameters ------------------------------------------------------


def _parse(customer: str, region: str = "eu", *, dry_run: bool = False) -> None:
    """A task body used to bind arguments."""


def test_template_uses_parameters_bound_with_defaults() -> None:
    """Parameters not passed in the call render with their default values."""
    arguments = bind_arguments(_parse, ("acme",), {})
    key = plain_key("{customer}/{region}/{dry_run}/{task_id}-{attempt}.log", arguments=arguments)
    assert key == f"acme/eu/False/{TASK_ID}-1.log"


def test_template_uses_parameters_passed_by_keyword() -> None:
    """Keyword arguments bind to their parameters and override defaults."""
    arguments = bind_arguments(_parse, (), {"customer": "globex", "region": "us", "dry_run": True})
    key = plain_key("{customer}/{region}/{dry_run}/{task_id}-{attempt}.log", arguments=arguments)
    assert key == f"globex/us/True/{TASK_ID}-1.log"


def test_template_supports_attribute_and_index_lookups() -> None:
    """``{obj.attr}`` and ``{mapping[key]}`` fields read into argument values."""

    class Order:
        number = "A-17"

    context = make_context(arguments={"order": Order(), "meta": {"shop": "north"}})
    key = render_key("{meta[shop]}/{order.number}/{task_id}-{attempt}", context, compressed=False)
    assert key == f"north/A-17/{TASK_ID}-1"


def test_bind_arguments_applies_defaults() -> None:
    """Every parameter is named, with defaults filled in."""
    assert bind_arguments(_parse, ("acme",), {}) == {
        "customer": "acme",
        "region": "eu",
        "dry_run": False,
    }


def test_bind_arguments_names_var_positional_and_var_keyword() -> None:
    """Extra positional and keyword arguments are gathered under ``*args``/``**kwargs`` names."""

    def run(first: int, *rest: int, **options: str) -> None:
        """A task body with variadic parameters."""

    assert bind_arguments(run, (1, 2, 3), {"mode": "fast"}) == {
        "first": 1,
        "rest": (2, 3),
        "options": {"mode": "fast"},
    }


def test_bind_arguments_keeps_keywords_when_call_does_not_fit() -> None:
    """A call that does not match the signature keeps only the keyword arguments as given."""
    assert bind_arguments(_parse, ("a", "b", "c"), {"extra": 1}) == {"extra": 1}
    assert bind_arguments(_parse, (), {}) == {}


def test_bind_arguments_unreadable_signature_keeps_keywords() -> None:
    """A callable whose signature cannot be read falls back to the keyword arguments."""

    class Unreadable:
        __signature__ = "not a signature"

        def __call__(self, *args: Any, **kwargs: Any) -> None:
            """Accept anything."""

    assert bind_arguments(Unreadable(), ("x",), {"sep": "-"}) == {"sep": "-"}


# -- sanitization of interpolated values ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "component"),
    [
        ("../../etc/passwd", "____etc_passwd"),
        ("/etc/passwd", "_etc_passwd"),
        ("..\\..\\windows\\system32", "____windows_system32"),
        ("a\x00b\nc\x7fd", "a_b_c_d"),
        (".hidden", "_hidden"),
        ("a..b", "a_b"),
        ("..", "_"),
        (".", "_"),
        ("...x", "_x"),
        ("", "_"),
        (None, "None"),
        (42, "42"),
        ("two words\ttab", "two_words_tab"),
        ("café", "caf_"),
        ("ok-Name_1.2=+@,~", "ok-Name_1.2=+@,~"),
    ],
)
def test_template_values_are_sanitized(value: object, component: str) -> None:
    """Each interpolated value becomes one safe name component, never a path."""
    key = plain_key("logs/{value}/{task_id}-{attempt}.log", arguments={"value": value})
    assert key == f"logs/{component}/{TASK_ID}-1.log"
    assert len(segments(key)) == 3


def test_sanitized_components_never_escape() -> None:
    """No sanitized value contains a separator, a control byte, or starts with a dot."""
    nasty = ["../..", "/", "\\", "\x00", ".", "..", "...", "a/../b", " ", "\r\n", ".x./..y"]
    for value in nasty:
        component = sanitize_component(value)
        assert component
        assert "/" not in component
        assert "\\" not in component
        assert ".." not in component
        assert not component.startswith(".")
        assert not re.search(r"[\x00-\x1f\x7f\s]", component)


def test_value_of_exactly_max_length_is_kept() -> None:
    """A 120-character safe value is kept unchanged, without a hash."""
    value = "v" * 120
    assert sanitize_component(value) == value


def test_long_values_are_cut_with_hash_suffix() -> None:
    """Values over 120 characters are cut to 120 with a 12-hex-digit hash suffix."""
    component = sanitize_component("a" * 121)
    assert len(component) == 120
    assert re.fullmatch(r"a{107}-[0-9a-f]{12}", component)


def test_long_values_stay_distinct() -> None:
    """Long values that share their first 120 characters still render to different keys."""
    first = "x" * 500
    second = "x" * 499 + "y"
    keys = {
        plain_key("{value}/{task_id}-{attempt}.log", arguments={"value": value})
        for value in (first, second)
    }
    assert len(keys) == 2
    for key in keys:
        assert len(segments(key)[0]) == 120


def test_long_values_hash_is_deterministic() -> None:
    """The same long value always gives the same component."""
    value = "é/x" * 100
    assert sanitize_component(value) == sanitize_component(value)
    assert len(sanitize_component(value)) == 120


def test_long_values_differing_only_in_unsafe_characters_stay_distinct() -> None:
    """Values that sanitize to the same prefix but differ in the original get different hashes."""
    first = "a/" * 80
    second = "a\\" * 80
    assert sanitize_component(first) != sanitize_component(second)


# -- key functions -------------------------------------------------------------------


def test_key_function_receives_the_context() -> None:
    """The key function is called with the very KeyContext given to render_key."""
    seen: list[KeyContext] = []
    context = make_context(arguments={"customer": "acme"})

    def key(ctx: KeyContext) -> str:
        seen.append(ctx)
        return f"runs/{ctx.arguments['customer']}/{ctx.task_id}-{ctx.attempt}.log"

    assert render_key(key, context, compressed=False) == f"runs/acme/{TASK_ID}-1.log"
    assert seen == [context]


def test_key_function_without_task_id_gets_it_added() -> None:
    """A key function omitting the task id gets ``-<task id>-<attempt>`` before the extension."""
    key = plain_key(lambda ctx: "logs/run.log", attempt=2)
    assert key == f"logs/run-{TASK_ID}-2.log"


def test_key_function_without_task_id_or_extension() -> None:
    """Without an extension the task id and attempt are appended to the name."""
    key = plain_key(lambda ctx: "run")
    assert key == f"run-{TASK_ID}-1"


def test_key_function_task_id_in_folder_is_kept() -> None:
    """A key that already contains the task id anywhere is left as it is."""
    key = plain_key(lambda ctx: f"logs/{ctx.task_id}/run.log")
    assert key == f"logs/{TASK_ID}/run.log"


def test_template_without_task_id_gets_it_added() -> None:
    """A template lacking ``{task_id}`` still yields a key holding the task id."""
    key = plain_key("logs/{task_name}/run.txt", attempt=4)
    assert key == f"logs/tests.parse/run-{TASK_ID}-4.txt"


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("../../etc/passwd", f"_/_/etc/passwd-{TASK_ID}-1"),
        ("/abs/run.log", f"abs/run-{TASK_ID}-1.log"),
        ("dir\\sub\\run.log", f"dir/sub/run-{TASK_ID}-1.log"),
        ("a b/c\x00d.log", f"a_b/cd-{TASK_ID}-1.log"),
        ("logs//./run.log", f"logs/_/run-{TASK_ID}-1.log"),
        ("logs/.hidden", f"logs/_hidden-{TASK_ID}-1"),
    ],
)
def test_key_function_result_is_normalized_and_sanitized(returned: str, expected: str) -> None:
    """A key function's result is made relative, free of ``..`` and sanitized per segment."""
    assert plain_key(lambda ctx: returned) == expected


# -- compression suffix --------------------------------------------------------------


def test_compressed_appends_gz() -> None:
    """A compressed log's key ends in ``.gz``."""
    key = render_key("{task_id}-{attempt}.log", make_context(), compressed=True)
    assert key == f"{TASK_ID}-1.log.gz"


def test_compressed_does_not_double_gz() -> None:
    """A key that already ends in ``.gz`` gets no second one."""
    key = render_key(lambda ctx: f"{ctx.task_id}.log.gz", make_context(), compressed=True)
    assert key == f"{TASK_ID}.log.gz"


def test_uncompressed_adds_no_gz() -> None:
    """An uncompressed log's key has no ``.gz`` added."""
    key = plain_key("{task_id}-{attempt}.log")
    assert not key.endswith(".gz")


# -- KeyRenderError ------------------------------------------------------------------


def test_unknown_field_raises_key_render_error() -> None:
    """A template field that is neither fixed nor a parameter raises KeyRenderError naming it."""
    with pytest.raises(KeyRenderError, match="customer") as caught:
        plain_key("{customer}/{task_id}-{attempt}")
    assert isinstance(caught.value.__cause__, KeyError)


@pytest.mark.parametrize("template", ["{}/{task_id}", "{0}/{task_id}"])
def test_positional_fields_raise_key_render_error(template: str) -> None:
    """Positional fields have nothing to fill them and raise KeyRenderError."""
    with pytest.raises(KeyRenderError):
        plain_key(template)


def test_missing_attribute_raises_key_render_error() -> None:
    """A template reading a missing attribute raises KeyRenderError."""
    with pytest.raises(KeyRenderError, match="cannot be rendered"):
        plain_key("{value.nope}/{task_id}", arguments={"value": "text"})


def test_malformed_template_raises_key_render_error() -> None:
    """An unbalanced brace in the template raises KeyRenderError, not ValueError."""
    with pytest.raises(KeyRenderError):
        plain_key("{task_id")


def test_broken_format_raises_key_render_error() -> None:
    """A value whose ``__format__`` raises gives KeyRenderError naming its type."""
    with pytest.raises(KeyRenderError, match="BrokenFormat") as caught:
        render_key(
            "{value}/{task_id}",
            make_context(arguments={"value": BrokenFormat()}),
            compressed=False,
        )
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_broken_str_raises_key_render_error() -> None:
    """A value whose ``__str__`` raises (reached through ``format``) gives KeyRenderError."""
    with pytest.raises(KeyRenderError, match="BrokenStr"):
        render_key(
            "{value}/{task_id}",
            make_context(arguments={"value": BrokenStr()}),
            compressed=False,
        )


def test_bad_format_spec_raises_key_render_error() -> None:
    """A format spec the value rejects gives KeyRenderError."""
    with pytest.raises(KeyRenderError, match="int"):
        plain_key("{attempt:%Y}/{task_id}")


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{value!s}/{task_id}", BrokenStr()),
        ("{value!r}/{task_id}", BrokenStr()),
        ("{value[0]}/{task_id}", 5),
    ],
)
def test_conversion_and_index_failures_raise_key_render_error(template: str, value: object) -> None:
    """Any failure rendering a template value is reported as KeyRenderError."""
    with pytest.raises(KeyRenderError):
        plain_key(template, arguments={"value": value})


def test_key_function_raising_gives_key_render_error() -> None:
    """An exception from the key function is wrapped in KeyRenderError, chained."""

    def key(ctx: KeyContext) -> str:
        raise LookupError("no customer")

    with pytest.raises(KeyRenderError, match="no customer") as caught:
        plain_key(key)
    assert isinstance(caught.value.__cause__, LookupError)


@pytest.mark.parametrize("returned", [None, b"logs/run.log", 42, ["logs"]])
def test_key_function_returning_non_str_gives_key_render_error(returned: object) -> None:
    """A key function returning anything but str raises KeyRenderError naming the type."""

    def key(ctx: KeyContext) -> Any:
        return returned

    with pytest.raises(KeyRenderError, match=f"returned {type(returned).__name__}, not str"):
        plain_key(key)


@pytest.mark.parametrize("returned", ["", "/", "//", "\x00", " / "])
def test_key_function_returning_empty_key_gives_key_render_error(returned: str) -> None:
    """A key that normalizes to nothing raises KeyRenderError."""
    with pytest.raises(KeyRenderError, match="empty"):
        render_key(lambda ctx: returned, make_context(), compressed=True)


def test_template_rendering_to_nothing_gives_key_render_error() -> None:
    """A template that normalizes to nothing raises KeyRenderError."""
    with pytest.raises(KeyRenderError, match="empty"):
        plain_key("//")


# -- unsanitized task ids (bugs) and nested format specs ---------------------------


def test_added_task_id_cannot_climb() -> None:
    """A task id added by render_key cannot introduce ``..`` segments."""
    key = plain_key(lambda ctx: "logs/run.log", task_id="../../etc")
    assert ".." not in segments(key)
    assert "." not in segments(key)


def test_template_with_unsafe_task_id_is_rendered_once() -> None:
    """A template holding ``{task_id}`` renders the (sanitized) id once and nothing raw."""
    key = plain_key("{task_name}/{task_id}-{attempt}.log", task_id="a b")
    assert key == "tests.parse/a_b-1.log"


def test_argument_in_started_spec_is_sanitized() -> None:
    """An argument interpolated into the ``started`` spec is sanitized before it is used."""
    key = plain_key("logs/{started:{dest}}/{task_id}-{attempt}.log", arguments={"dest": "a b/c d"})
    assert key == f"logs/a_b_c_d/{TASK_ID}-1.log"


# -- normalize_key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "normalized"),
    [
        ("/abs/path.log", "abs/path.log"),
        ("a//b", "a/b"),
        ("a/./b", "a/_/b"),
        ("a/../b", "a/_/b"),
        ("../../etc/passwd", "_/_/etc/passwd"),
        (".../x", "_/x"),
        ("a\\b\\c", "a/b/c"),
        ("C:\\logs\\x", "C:/logs/x"),
        ("a\x00b/c\x1f\x7f", "ab/c"),
        (" a / b ", "a/b"),
        ("/ .. /x", "_/x"),
        ("", ""),
        ("///", ""),
        ("logs/run.log", "logs/run.log"),
    ],
)
def test_normalize_key(key: str, normalized: str) -> None:
    """normalize_key makes keys relative and free of dot segments, backslashes and control bytes."""
    assert normalize_key(key) == normalized


def test_normalize_key_is_idempotent() -> None:
    """Normalizing an already normalized key changes nothing."""
    once = normalize_key("/x/../y\\.\\z\x00/")
    assert normalize_key(once) == once


# -- template_fields -----------------------------------------------------------------


def test_template_fields_in_order() -> None:
    """Field names are listed in order of appearance, repeats included."""
    assert template_fields("{task_name}/{started:%Y}/{customer}/{task_id}-{task_id}") == [
        "task_name",
        "started",
        "customer",
        "task_id",
        "task_id",
    ]


def test_template_fields_keeps_attribute_and_index_forms() -> None:
    """Attribute and index fields are returned as written."""
    assert template_fields("{order.number}/{meta[shop]}") == ["order.number", "meta[shop]"]


@pytest.mark.parametrize("template", ["logs/run.log", "{{literal}}/x", ""])
def test_template_fields_none(template: str) -> None:
    """A template without placeholders has no fields."""
    assert template_fields(template) == []


@pytest.mark.parametrize("template", ["{task_id", "task_id}", "{task_id}}", "x/{a:{b}"])
def test_template_fields_malformed_raises_value_error(template: str) -> None:
    """A malformed template raises ValueError."""
    with pytest.raises(ValueError, match=r"'[{}]'|Single|unmatched|expected"):
        template_fields(template)


# -- Redaction of key fields ---------------------------------------------------------------

DEFAULTS = Redactor.from_entries(DEFAULT_REDACT)
IDENTIFIERS = Redactor.from_entries([*DEFAULT_REDACT, "identifiers"])


def test_an_email_argument_never_reaches_the_key() -> None:
    """An e-mail address passed as an argument is redacted before it is sanitized, so
    neither the address nor its sanitized form is in the key."""
    context = make_context(arguments={"contact": "jane.doe@example.org", "data_file_id": 7})
    key = render_key(
        "logs/{data_file_id}/{contact}/{task_id}.log",
        context,
        compressed=False,
        redact=DEFAULTS.redact,
    )
    assert key == f"logs/7/_REDACTED_email_/{TASK_ID}.log"
    assert "jane" not in key


def test_an_ssn_argument_is_redacted_with_its_parameter_name_as_context() -> None:
    """A bare SSN under a parameter named ``ssn`` is masked by the default set; with
    identifiers, a case number under any name is masked too."""
    context = make_context(arguments={"ssn": "123456789", "case": 11111111112})
    key = render_key("{ssn}/{case}/{task_id}", context, compressed=False, redact=DEFAULTS.redact)
    assert key == f"_REDACTED_ssn_/11111111112/{TASK_ID}"
    key = render_key("{ssn}/{case}/{task_id}", context, compressed=False, redact=IDENTIFIERS.redact)
    assert key == f"_REDACTED_ssn_/_REDACTED_identifiers_/{TASK_ID}"


def test_fields_with_format_specs_and_conversions_are_redacted_after_formatting() -> None:
    """The field is formatted with its spec or conversion first, then redacted."""
    context = make_context(arguments={"ssn": 123456789, "contact": "a.b@example.com"})
    key = render_key(
        "{ssn:09d}/{contact!r}/{task_id}", context, compressed=False, redact=DEFAULTS.redact
    )
    assert key == f"_REDACTED_ssn_/_REDACTED_email_/{TASK_ID}"


def test_fixed_fields_are_not_redacted() -> None:
    """The task id, attempt and start time are the package's own and stay as they are,
    even when a task id looks like a number identifiers would mask."""
    context = make_context(task_id="123456789012")
    key = render_key(
        "{task_name}/{started:%Y%m%d}/{task_id}-{attempt}",
        context,
        compressed=False,
        redact=IDENTIFIERS.redact,
    )
    assert key == "tests.parse/20240102/123456789012-1"


def test_segments_a_key_function_returns_are_redacted() -> None:
    """A key function may put any argument in the key, so each segment it returns is
    redacted before it is sanitized."""

    def key_function(context: KeyContext) -> str:
        return f"people/{context.arguments['email']}/{context.task_id}.log"

    context = make_context(arguments={"email": "jane@example.com"})
    key = render_key(key_function, context, compressed=False, redact=DEFAULTS.redact)
    assert key == f"people/_REDACTED_email_/{TASK_ID}.log"


def test_an_error_naming_an_argument_value_is_redacted() -> None:
    """A key function's error that quotes an argument does not carry it into the message."""

    def key_function(context: KeyContext) -> str:
        raise ValueError(f"no folder for {context.arguments['email']}")

    context = make_context(arguments={"email": "jane@example.com"})
    with pytest.raises(KeyRenderError) as raised:
        render_key(key_function, context, compressed=False, redact=DEFAULTS.redact)
    assert "jane@example.com" not in str(raised.value)
    assert "[REDACTED:email]" in str(raised.value)
    assert isinstance(raised.value.__cause__, ValueError)


def test_without_a_redactor_arguments_are_only_sanitized() -> None:
    """Callers that pass no redactor get the key as before."""
    context = make_context(arguments={"contact": "jane@example.com"})
    assert render_key("{contact}/{task_id}", context, compressed=False) == (
        f"jane@example.com/{TASK_ID}"
    )
