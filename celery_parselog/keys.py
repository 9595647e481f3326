"""Where a run's log is stored: rendering the key template or key function, and keeping keys safe.

Every value taken from a task's arguments is reduced to a plain name component, so
no argument can climb out of the prefix, produce ``..``, an absolute path or a
control character. The task id is always part of the key, so one run's log never
lands on another's. Given the run's redactor, every value taken from an argument is
redacted before it is sanitized, so personal data passed as an argument never becomes
part of an object name or URI.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery_parselog.redaction import redact_value

__all__ = [
    "FIXED_FIELDS",
    "KeyContext",
    "KeyRenderError",
    "bind_arguments",
    "field_bases",
    "normalize_key",
    "render_key",
    "sanitize_component",
    "template_fields",
]

FIXED_FIELDS = ("task_name", "task_id", "attempt", "root_id", "started")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+@,~-]+")
_DOTS = re.compile(r"\.{2,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_COMPONENT = 120


@dataclass(frozen=True)
class KeyContext:
    """What a key function receives about the run whose log it names."""

    task_name: str
    task_id: str
    attempt: int
    root_id: str | None
    started: datetime
    arguments: Mapping[str, Any] = field(default_factory=dict)
    task: Any = None


class KeyRenderError(Exception):
    """The key template or key function could not produce a key for this run."""


class _Started:
    """The run's start time: trusted, so its format spec may contain ``/``."""

    def __init__(self, value: datetime) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        return self.value.strftime(spec or "%Y%m%dT%H%M%SZ")


class _Argument:
    """A value taken from the task's arguments, with the parameter it came from."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value


class _KeyFormatter(string.Formatter):
    """Formats each field, redacts it when it came from an argument, then sanitizes it.

    Redaction comes before sanitizing, on the field's whole text with its parameter
    name as context, so an e-mail address or SSN passed as an argument never becomes
    part of the key; sanitizing first would break the shapes the redactor looks for.
    """

    def __init__(self, redact: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._redact = redact

    def get_field(
        self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[Any, str]:
        value, first = super().get_field(field_name, args, kwargs)
        if self._redact is not None and first not in FIXED_FIELDS:
            value = _Argument(str(first), value)
        return value, first

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if isinstance(value, _Argument):
            return _Argument(value.name, super().convert_field(value.value, conversion))
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, _Started):
            return _CONTROL.sub("", format(value, format_spec))
        argument = value if isinstance(value, _Argument) else None
        if argument is not None:
            value = argument.value
        try:
            text = format(value, format_spec)
        except Exception as error:
            raise KeyRenderError(
                f"a value of type {type(value).__name__} cannot be formatted: {error!r}"
            ) from error
        if argument is not None and self._redact is not None:
            text = redact_value(text, self._redact, name=argument.name)
        return sanitize_component(text)


_FORMATTER = _KeyFormatter()


def sanitize_component(text: str) -> str:
    """Reduce one interpolated value to a safe, readable name component.

    Anything but letters, digits and ``._=+@,~-`` becomes ``_``; runs of dots and a
    leading dot do too, so the result is never ``..``, hidden or empty. Very long
    values are cut and given a short hash so distinct values stay distinct.
    """
    cleaned = _DOTS.sub("_", _UNSAFE.sub("_", text))
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if len(cleaned) > _MAX_COMPONENT:
        digest = hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:12]
        cleaned = f"{cleaned[: _MAX_COMPONENT - 13]}-{digest}"
    return cleaned or "_"


def normalize_key(key: str) -> str:
    """Make a key relative, free of ``.``/``..`` segments, backslashes and control bytes."""
    segments = []
    for raw in _CONTROL.sub("", key).replace("\\", "/").split("/"):
        segment = raw.strip()
        if not segment:
            continue
        segments.append("_" if set(segment) == {"."} else segment)
    return "/".join(segments)


def template_fields(template: str) -> list[str]:
    """The field names a key template uses, in order. Raises ``ValueError`` if malformed."""
    names = []
    for _literal, name, _spec, _conversion in _FORMATTER.parse(template):
        if name is not None:
            names.append(name)
    return names


def field_bases(template: str) -> set[str]:
    """The names a template needs from a run: ``{path.name}`` and ``{path[0]}`` need ``path``.

    Raises ``ValueError`` if the template is malformed.
    """
    return {name.split(".")[0].split("[")[0] for name in template_fields(template)}


def bind_arguments(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Name every argument of a call by its parameter, with defaults applied.

    A call that does not fit the signature (the task will fail on it anyway) keeps
    what can be named: the keyword arguments as given.
    """
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return dict(kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _ensure_task_id(key: str, context: KeyContext) -> str:
    """Keep runs apart even when a key function forgets the task id.

    The id is looked for as it appears once sanitized, and as a whole token, so a
    short custom id cannot be "found" inside some other word of the key.
    """
    task_id = sanitize_component(context.task_id)
    if _contains_token(key, task_id):
        return key
    head, slash, name = key.rpartition("/")
    stem, dot, extension = name.partition(".")
    unique = f"{stem}-{task_id}-{context.attempt}"
    return f"{head}{slash}{unique}{dot}{extension}"


def _contains_token(text: str, token: str) -> bool:
    """Whether ``token`` stands in ``text`` with no letter or digit right before or after it.

    A plain scan rather than a regular expression: each run has a new task id, and a
    pattern built from it would be compiled afresh every time.
    """
    start = text.find(token)
    while start != -1:
        end = start + len(token)
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        if not before.isalnum() and not after.isalnum():
            return True
        start = text.find(token, start + 1)
    return False


def render_key(
    key: str | Callable[[KeyContext], str],
    context: KeyContext,
    *,
    compressed: bool,
    redact: Callable[[str], str] | None = None,
) -> str:
    """The stored name of one run's log. Raises :class:`KeyRenderError` when it cannot be made.

    With ``redact`` (the run's :meth:`Redactor.redact <celery_parselog.redaction.Redactor.redact>`),
    every template field taken from an argument is redacted before it is sanitized, and
    so is every segment a key function returns, since any of them may hold an argument.
    The fixed fields (task name and id, attempt, root id, start time) are the package's
    own and are left as they are. Error messages are redacted too: they may quote a value.
    """
    try:
        rendered = _render(key, context, redact)
    except KeyRenderError as error:
        if redact is None:
            raise
        raise KeyRenderError(redact(str(error))) from error.__cause__
    if not rendered:
        raise KeyRenderError("the key is empty")
    rendered = _ensure_task_id(rendered, context)
    if compressed and not rendered.endswith(".gz"):
        rendered += ".gz"
    return rendered


def _render(
    key: str | Callable[[KeyContext], str],
    context: KeyContext,
    redact: Callable[[str], str] | None,
) -> str:
    if callable(key):
        try:
            rendered = key(context)
        except Exception as error:
            raise KeyRenderError(f"the key function raised {error!r}") from error
        if not isinstance(rendered, str):
            raise KeyRenderError(f"the key function returned {type(rendered).__name__}, not str")
        return "/".join(
            sanitize_component(part if redact is None else redact(part))
            for part in normalize_key(rendered).split("/")
            if part
        )
    values: dict[str, Any] = dict(context.arguments)
    values.update(
        task_name=context.task_name,
        task_id=context.task_id,
        attempt=context.attempt,
        root_id=context.root_id or context.task_id,
        started=_Started(context.started),
    )
    formatter = _FORMATTER if redact is None else _KeyFormatter(redact)
    try:
        rendered = formatter.vformat(key, (), values)
    except KeyRenderError:
        raise
    except KeyError as error:
        raise KeyRenderError(f"the key template names {error}, which this task lacks") from error
    except Exception as error:
        raise KeyRenderError(f"the key template cannot be rendered: {error!r}") from error
    return normalize_key(rendered)


def with_delivery(key: str, delivery: int) -> str:
    """The key of a redelivered run: ``…/<id>-1.log.gz`` becomes ``…/<id>-1.delivery-2.log.gz``.

    A message that comes back after its worker was lost runs again with the same task
    id and attempt, so the key template alone would give both runs one key; the first
    delivery keeps the plain key, every later one gets its number before the suffix.
    """
    if delivery <= 1:
        return key
    head, slash, name = key.rpartition("/")
    for suffix in (".log.gz", ".log", ".gz"):
        if name.endswith(suffix):
            return f"{head}{slash}{name.removesuffix(suffix)}.delivery-{delivery}{suffix}"
    return f"{key}.delivery-{delivery}"
