"""Sentry hooks: the same redaction on events and breadcrumbs, and the run's log address.

A project that reports errors to Sentry sends it the very text celery-parselog
redacts in its logs: exception values, log messages turned into breadcrumbs, local
variables, ``extra``. :func:`sentry_options` gives the ``before_send`` and
``before_breadcrumb`` hooks for ``sentry_sdk.init`` in one line::

    import sentry_sdk
    from celery_parselog.sentry import sentry_options

    sentry_sdk.init(dsn=SENTRY_DSN, **sentry_options())

Every string of an event (and every dict key, and every number that the redactor
would mask) goes through the redactor of ``CELERY_PARSELOG_REDACT``, each with its
key as context, so ``{"ssn": "123456789"}`` in ``extra`` is masked by the default set.
Fields Sentry needs as they are (ids, times, levels, platform, SDK, file names,
functions and line numbers of frames) are left alone, so events still group.

While a captured run is active in the thread (or greenlet) that reports the event,
:func:`add_log_address` puts the run's log key and URI on it, as the
``parselog.key`` tag and a ``parselog`` context, so an error in Sentry links to that
run's whole log. ``sentry_options()``'s ``before_send`` does this too; use
:func:`add_log_address` on its own with ``sentry_sdk.add_global_event_processor``.

Nothing here imports ``sentry_sdk``: the hooks are plain functions Sentry calls.
:func:`sentry_options` checks that it is installed, and names the extra
(``celery-parselog[sentry]``) if it is not. If scrubbing an event fails, the
exception propagates to Sentry, which then drops the event rather than send it
unscrubbed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from celery_parselog.redaction import DEFAULT_REDACT, Redactor, cached_redactor, redact_value

__all__ = [
    "SentryOptions",
    "active_log_address",
    "add_log_address",
    "redact_breadcrumb",
    "redact_event",
    "sentry_options",
]

Event = dict[str, Any]
Hint = Mapping[str, Any]

# Keys whose values Sentry needs unchanged: ids and times, where an event comes from,
# and what groups it (frames' files, functions and lines). Their values are the
# program's own, never data it handled.
_KEPT = frozenset(
    {
        "event_id",
        "timestamp",
        "start_timestamp",
        "received",
        "platform",
        "level",
        "logger",
        "type",
        "category",
        "sdk",
        "modules",
        "release",
        "dist",
        "environment",
        "server_name",
        "fingerprint",
        "transaction",
        "transaction_info",
        "trace_id",
        "span_id",
        "parent_span_id",
        "filename",
        "abs_path",
        "module",
        "function",
        "lineno",
        "colno",
        "in_app",
        "package",
        "instruction_addr",
        "mechanism",
        "debug_meta",
        "parselog",
    }
)
_TAG_LIMIT = 200  # Sentry's longest tag value


def _redactor() -> Redactor:
    """The redactor of ``CELERY_PARSELOG_REDACT``, or of the default set when it cannot be read.

    An unusable setting is reported by the system checks (``celery_parselog.E011``);
    an event on its way to Sentry is still scrubbed with the defaults meanwhile.
    """
    try:
        from celery_parselog.conf import ParselogSettings

        return cached_redactor(ParselogSettings().redact)
    except Exception:  # noqa: BLE001 - settings not configured or not valid
        return cached_redactor(tuple(DEFAULT_REDACT))


def _scrubbed(value: Any, redact: Callable[[str], str], name: str | None) -> Any:
    if isinstance(value, str):
        return redact_value(value, redact, name=name)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        shown = str(value)
        return value if redact_value(shown, redact, name=name) == shown else redact(shown)
    if isinstance(value, Mapping):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            if key in _KEPT:
                result[key] = item
                continue
            new_key = redact(key) if isinstance(key, str) else key
            result[new_key] = _scrubbed(item, redact, key if isinstance(key, str) else None)
        return result
    if isinstance(value, (list, tuple)):
        return [_scrubbed(item, redact, name) for item in value]
    return value


def redact_event(event: Event, hint: Hint | None = None, redactor: Redactor | None = None) -> Event:
    """``event`` with every value redacted (a ``before_send`` hook); never drops it.

    Messages, ``logentry`` (message and params), exception values, local variables of
    frames, breadcrumbs, ``extra``, tags, request data and contexts are all covered.
    """
    redact = (redactor or _redactor()).redact
    scrubbed: Event = _scrubbed(event, redact, None)
    return scrubbed


def redact_breadcrumb(
    crumb: Event, hint: Hint | None = None, redactor: Redactor | None = None
) -> Event:
    """``crumb`` with its message and data redacted (a ``before_breadcrumb`` hook)."""
    redact = (redactor or _redactor()).redact
    scrubbed: Event = _scrubbed(crumb, redact, None)
    return scrubbed


def active_log_address() -> tuple[str, str] | None:
    """The log key and URI of the run captured in this context, or ``None`` outside one.

    The URI is ``""`` while the run does not know it yet.
    """
    from celery_parselog import routing

    run = routing.current_run()
    if run is None:
        return None
    key = getattr(run, "key", None)
    if not isinstance(key, str) or not key:
        return None
    uri = getattr(run, "uri", None)
    return key, uri if isinstance(uri, str) else ""


def add_log_address(event: Event, hint: Hint | None = None) -> Event:
    """Put the active run's log key and URI on ``event`` (an event processor).

    As the ``parselog`` context (``key`` and ``uri``), and the key as the
    ``parselog.key`` tag, which Sentry can search, when it fits in a tag. Outside a
    captured run the event is returned unchanged.
    """
    address = active_log_address()
    if address is None:
        return event
    key, uri = address
    context = {"key": key, "uri": uri} if uri else {"key": key}
    contexts = event.get("contexts")
    event["contexts"] = {**(contexts if isinstance(contexts, dict) else {}), "parselog": context}
    if len(key) <= _TAG_LIMIT:
        tags = event.get("tags")
        event["tags"] = {**(tags if isinstance(tags, dict) else {}), "parselog.key": key}
    return event


class SentryOptions(TypedDict):
    """The keyword arguments :func:`sentry_options` gives ``sentry_sdk.init``.

    The hooks take ``Any``: Sentry's own event types are private to ``sentry_sdk``,
    which is not imported here.
    """

    before_send: Callable[[Any, Any], Any]
    before_breadcrumb: Callable[[Any, Any], Any]


def sentry_options(redactor: Redactor | None = None) -> SentryOptions:
    """``before_send`` and ``before_breadcrumb`` for ``sentry_sdk.init(**sentry_options())``.

    ``before_send`` redacts the event, then adds the active run's log address (which
    is the package's own key, already made from redacted values). ``redactor``
    defaults to the one of ``CELERY_PARSELOG_REDACT``, read at each event. Raises
    ``ImportError`` naming the extra when ``sentry_sdk`` is not installed.
    """
    if importlib.util.find_spec("sentry_sdk") is None:
        raise ImportError(
            "celery_parselog.sentry needs sentry-sdk: pip install 'celery-parselog[sentry]'"
        )

    def before_send(event: Any, hint: Any) -> Any:
        return add_log_address(redact_event(event, hint, redactor), hint)

    def before_breadcrumb(crumb: Any, hint: Any) -> Any:
        return redact_breadcrumb(crumb, hint, redactor)

    return SentryOptions(before_send=before_send, before_breadcrumb=before_breadcrumb)
