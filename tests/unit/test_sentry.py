"""Unit tests for celery_parselog.sentry, through a real sentry_sdk client.

Events go through ``sentry_sdk``'s own client (serializing, hooks, envelopes) to a
transport that keeps the envelopes in memory, so nothing leaves the process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import sentry_sdk
from django.test import override_settings
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

import celery_parselog.routing
from celery_parselog.redaction import DEFAULT_REDACT, Redactor
from celery_parselog.sentry import (
    active_log_address,
    add_log_address,
    redact_breadcrumb,
    redact_event,
    sentry_options,
)

RECORD = "T22021061111111111212198503121234567891221222000000000000000000000000000001"


class CapturingTransport(Transport):
    """Keeps every envelope the client sends."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        """The events sent, as the JSON Sentry would receive."""
        found = []
        for envelope in self.envelopes:
            for item in envelope.items:
                if item.type == "event":
                    found.append(json.loads(item.get_bytes()))
        return found


@contextmanager
def sentry_client(redactor: Redactor | None = None) -> Iterator[CapturingTransport]:
    """A real client with the hooks of sentry_options(), sending to memory; closed after.

    No integrations, so nothing global (logging, excepthook, threads) is patched.
    """
    sent = CapturingTransport()
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=sent,
        default_integrations=False,
        auto_enabling_integrations=False,
        include_local_variables=True,
        **sentry_options(redactor),
    )
    try:
        yield sent
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def transport() -> Iterator[CapturingTransport]:
    """The envelopes of a client made by sentry_client()."""
    with sentry_client() as sent:
        yield sent


def _raise_with_locals() -> None:
    ssn = "123-45-6789"
    contact = "jane.doe@example.org"
    raise ValueError(f"applicant {ssn} rejected, contact {contact}")


def test_exception_values_locals_and_extra_are_redacted(transport: CapturingTransport) -> None:
    """An exception's value, its frames' local variables and extra lose every sensitive
    value; the exception type and the frames' functions stay, so events still group."""
    with sentry_sdk.new_scope() as scope:
        scope.set_extra("ssn", "219099999")
        scope.set_extra("contact", {"email": "john@example.com"})
        try:
            _raise_with_locals()
        except ValueError as error:
            sentry_sdk.capture_exception(error)
    sentry_sdk.flush()
    (event,) = transport.events()
    text = json.dumps(event)
    for value in ("123-45-6789", "jane.doe@example.org", "219099999", "john@example.com"):
        assert value not in text
    exception = event["exception"]["values"][0]
    assert exception["type"] == "ValueError"
    assert exception["value"] == ("applicant [REDACTED:ssn] rejected, contact [REDACTED:email]")
    frame = exception["stacktrace"]["frames"][-1]
    assert frame["function"] == "_raise_with_locals"
    assert "[REDACTED:ssn]" in frame["vars"]["ssn"]
    assert event["extra"]["ssn"] == "[REDACTED:ssn]"


def test_messages_logentry_and_breadcrumbs_are_redacted(transport: CapturingTransport) -> None:
    """A captured message, a logentry with its params, and breadcrumbs' messages and data
    are redacted, as the logging integration would send them."""
    sentry_sdk.add_breadcrumb(
        message="emailed jane@example.com", category="mail", data={"ssn": "123456789"}
    )
    sentry_sdk.capture_event(
        {
            "logentry": {
                "message": "could not parse %s for %s",
                "params": ["row 3", "john@example.com"],
                "formatted": "could not parse row 3 for john@example.com",
            },
            "level": "error",
        }
    )
    sentry_sdk.capture_message("token Bearer abcdefghijklmnopqrstuvwxyz0123")
    sentry_sdk.flush()
    first, second = transport.events()
    assert first["logentry"]["params"] == ["row 3", "[REDACTED:email]"]
    assert first["logentry"]["formatted"] == "could not parse row 3 for [REDACTED:email]"
    crumb = first["breadcrumbs"]["values"][0]
    assert crumb["message"] == "emailed [REDACTED:email]"
    assert crumb["category"] == "mail"
    assert crumb["data"] == {"ssn": "[REDACTED:ssn]"}
    assert second["message"] == "token Bearer [REDACTED:auth_header]"


def test_the_redaction_setting_applies_to_events(transport: CapturingTransport) -> None:
    """With identifiers in CELERY_PARSELOG_REDACT, a raw record line in an event is masked."""
    with override_settings(CELERY_PARSELOG_REDACT=[*DEFAULT_REDACT, "identifiers"]):
        sentry_sdk.capture_message(f"Record length is 75: {RECORD}")
    sentry_sdk.capture_message(f"Record length is 75: {RECORD}")
    sentry_sdk.flush()
    with_identifiers, without = transport.events()
    assert with_identifiers["message"] == "Record length is 75: [REDACTED:identifiers]"
    assert without["message"] == f"Record length is 75: {RECORD}"


@dataclass
class StandInRun:
    """Stands for the run the router holds, with the log address it will carry."""

    key: str
    uri: str | None = None


def test_events_in_a_captured_run_carry_its_log_address(
    transport: CapturingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a run is current, an event gets its key as a tag and key and URI as the
    parselog context; outside a run it gets neither."""
    run = StandInRun("parselog/proj.parse/2024/01/15/abc-1.log.gz", "s3://logs/parselog/abc")
    sentry_sdk.capture_message("outside")
    monkeypatch.setattr(celery_parselog.routing, "current_run", lambda: run)
    sentry_sdk.capture_message("inside")
    sentry_sdk.flush()
    outside, inside = transport.events()
    assert "parselog" not in outside.get("contexts", {})
    assert "parselog.key" not in outside.get("tags", {})
    assert inside["tags"]["parselog.key"] == run.key
    assert inside["contexts"]["parselog"] == {"key": run.key, "uri": run.uri}


def test_active_log_address_reads_the_current_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """No run, or a run without a key, gives None; a run without a URI yet gives ""."""
    monkeypatch.setattr(celery_parselog.routing, "current_run", lambda: None)
    assert active_log_address() is None
    monkeypatch.setattr(celery_parselog.routing, "current_run", object)
    assert active_log_address() is None
    monkeypatch.setattr(celery_parselog.routing, "current_run", lambda: StandInRun("k.log"))
    assert active_log_address() == ("k.log", "")
    event = add_log_address({"tags": {"a": "b"}})
    assert event == {
        "tags": {"a": "b", "parselog.key": "k.log"},
        "contexts": {"parselog": {"key": "k.log"}},
    }


def test_a_key_too_long_for_a_tag_goes_in_the_context_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sentry cuts tag values at 200 characters; a longer key is only in the context."""
    key = "k/" * 150 + "x.log"
    monkeypatch.setattr(celery_parselog.routing, "current_run", lambda: StandInRun(key, "u"))
    event = add_log_address({})
    assert "tags" not in event
    assert event["contexts"]["parselog"] == {"key": key, "uri": "u"}


def test_hooks_take_an_explicit_redactor_and_keep_structural_fields() -> None:
    """With a redactor passed in, ids, levels, times and frame locations are kept as they are."""
    redactor = Redactor.from_entries(["identifiers"])
    event = {
        "event_id": "123456789012345678901234567890ab",
        "timestamp": "2024-01-15T08:00:00Z",
        "level": "error",
        "message": "case 11111111112",
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": "DOB 19850312",
                    "stacktrace": {"frames": [{"lineno": 123456789, "function": "parse"}]},
                }
            ]
        },
    }
    result = redact_event(event, {}, redactor)
    assert result["event_id"] == event["event_id"]
    assert result["message"] == "case [REDACTED:identifiers]"
    value = result["exception"]["values"][0]
    assert value["value"] == "DOB [REDACTED:identifiers]"
    assert value["stacktrace"]["frames"][0] == {"lineno": 123456789, "function": "parse"}
    crumb = redact_breadcrumb({"message": "ssn 123456789", "data": {"n": 123456789}}, {}, redactor)
    assert crumb == {
        "message": "ssn [REDACTED:identifiers]",
        "data": {"n": "[REDACTED:identifiers]"},
    }


def test_sentry_options_names_the_extra_when_sentry_sdk_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without sentry_sdk installed, sentry_options() says which extra to install."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "sentry_sdk" else real(name, *args),
    )
    with pytest.raises(ImportError, match=r"celery-parselog\[sentry\]"):
        sentry_options()


def test_a_failing_redactor_drops_the_event_rather_than_send_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If scrubbing raises, Sentry drops the event: nothing unscrubbed is sent."""

    class Broken(Redactor):
        def redact(self, text: str) -> str:
            raise RuntimeError("broken")

    with caplog.at_level(logging.CRITICAL), sentry_client(Broken(["email"])) as sent:
        sentry_sdk.capture_message("jane@example.com")
        sentry_sdk.flush()
    assert sent.events() == []
