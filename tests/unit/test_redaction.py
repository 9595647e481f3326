"""Unit tests for celery_parselog.redaction: what each built-in redacts, and what it leaves."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterator

import pytest

from celery_parselog.formatting import build_formatter
from celery_parselog.redaction import (
    BUILTIN_NAMES,
    DEFAULT_REDACT,
    MIN_SECRET_LENGTH,
    OPT_IN_NAMES,
    Redactor,
    entry_problem,
    forget_secrets,
    redact_json,
    redact_value,
    register_secret,
)
from tests.unit.identifiers_corpus import identifier_lines, operational_lines
from tests.unit.redaction_corpus import (
    REGISTERED_SECRETS,
    clean_lines,
    luhn_complete,
    sensitive_lines,
)

ALL = Redactor.from_entries(DEFAULT_REDACT)
TS = "2024-01-15T12:34:56.789Z INFO datafiles.tasks:"
TASK_ID = "5b0c7f2e-9d1a-4c3b-8e7f-6a5b4c3d2e1f"

# The clean corpus must stay under this share of changed lines. A false positive costs a
# readable value in one line; a miss leaks data. 0.5% (one line in 200) keeps logs
# readable while leaving room for the few random long ids that pass as card numbers.
MAX_FALSE_POSITIVE_RATE = 0.005


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    """Every test starts and ends with no registered secret."""
    forget_secrets()
    yield
    forget_secrets()


def redacted(text: str, *entries: str) -> str:
    """``text`` through a redactor of ``entries`` (every built-in when none are given)."""
    redactor = Redactor.from_entries(list(entries)) if entries else ALL
    return redactor.redact(text)


def assert_kept(text: str, *entries: str) -> None:
    """Nothing in ``text`` is redacted: the very same object comes back."""
    result = redacted(text, *entries)
    assert result is text, f"changed: {result!r}"


# -- ssn --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"{TS} verified applicant 123-45-6789 against registry",
        "applicant(ssn='078-05-1120', name='x')",
        '{"message": "checked", "extra": {"ssn": "219-09-9999"}}',
        "ValueError: bad SSN:123-45-6789.",
        "line one\n123-45-6789\nline three",
    ],
)
def test_ssn_with_dashes_is_redacted_anywhere(text: str) -> None:
    """A dashed SSN in a valid range is redacted in messages, reprs, JSON and tracebacks."""
    result = redacted(text, "ssn")
    assert "[REDACTED:ssn]" in result
    assert not re.search(r"\d{3}-\d\d-\d{4}", result)


@pytest.mark.parametrize(
    "text",
    [
        "ssn=123456789",
        "SSN: 123 45 6789",
        '{"ssn": "123456789"}',
        "{'customer_ssn': '123 45 6789'}",
        "social security number 123456789",
        "tax id 123-45-6789",
        "SSN is 123456789",
        '\\"ssn\\": \\"123456789\\"',
    ],
)
def test_ssn_bare_or_spaced_is_redacted_after_a_keyword(text: str) -> None:
    """Nine bare or spaced digits are an SSN right after a word such as ``ssn`` or ``tax id``."""
    result = redacted(text, "ssn")
    assert result.count("[REDACTED:ssn]") == 1
    assert not re.search(r"\d{4}", result)


@pytest.mark.parametrize(
    "text",
    [
        "processed 123456789 bytes",
        "counts 123 45 6789",
        "ssn missing; row 123456789 skipped",
    ],
)
def test_ssn_bare_or_spaced_without_keyword_is_left(text: str) -> None:
    """Nine bare digits without an SSN keyword right before them are an id or a count."""
    assert_kept(text, "ssn")


@pytest.mark.parametrize(
    "value",
    ["000-12-3456", "666-12-3456", "900-12-3456", "999-99-9999", "123-00-4567", "123-45-0000"],
)
def test_ssn_in_an_impossible_range_is_left(value: str) -> None:
    """Area 000, 666 or 9xx, group 00 and serial 0000 are never issued, so never redacted."""
    assert_kept(f"rejected value {value}: not a valid SSN", "ssn")
    assert_kept(f"ssn={value.replace('-', '')}", "ssn")


@pytest.mark.parametrize(
    "text", ["1123-45-6789", "123-45-67890", "A123-45-6789", "123-45-6789-2", "v1.123-45-6789"]
)
def test_ssn_inside_a_longer_token_is_left(text: str) -> None:
    """Digits that continue a longer number or token are not an SSN."""
    assert_kept(text, "ssn")


# -- email ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (f"{TS} sent receipt to jane.doe@example.com for order 48291", 1),
        ("to=<j_smith42@mail.example.co.uk>, cc=ops+alerts@example.org.", 2),
        ("{'email': 'wei.chen@example.net'}", 1),
        ('{"extra": {"email": "ana+news@test.example.io"}}', 1),
        ("rows rejected:\nkofi.mensah@example.com\nnext", 1),
        ("...jane@example.com", 1),
        ("ivanova@bücher.example.de", 1),
    ],
)
def test_email_addresses_are_redacted(text: str, count: int) -> None:
    """Addresses with a dotted domain are redacted in messages, reprs, JSON and tracebacks."""
    result = redacted(text, "email")
    assert result.count("[REDACTED:email]") == count
    assert "@" not in result


@pytest.mark.parametrize(
    "text",
    [
        "celery@worker-3 ready",
        "user@localhost refused",
        "@app.task decorated",
        "pinned pkg@1.2.3",
        "x@example.c0m",
        "mail to @ example.com",
    ],
)
def test_things_with_an_at_sign_that_are_not_addresses_are_left(text: str) -> None:
    """Node names, hosts without a dotted domain, decorators and versions are kept."""
    assert_kept(text, "email")


# -- phone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "(212) 555-0123",
        "(212)555-0123",
        "(212) 555 0123",
        "212-555-0123",
        "212.555.0123",
        "+1 212 555 0123",
        "+1-212-555-0123",
        "+1.212.555.0123",
        "+12125550123",
        "+1 (212) 555-0123",
        "1-212-555-0123",
        "1 (212) 555-0123",
    ],
)
def test_north_american_phone_numbers_are_redacted(value: str) -> None:
    """Grouped North American numbers, with or without +1, are redacted in any message."""
    for text in (f"calling {value} about ticket T-8812", f"{{'phone': '{value}'}}"):
        result = redacted(text, "phone")
        assert result.count("[REDACTED:phone]") == 1, result
        assert "0123" not in result


@pytest.mark.parametrize(
    "text",
    [
        "phone=2125550123",
        "Phone: 12125550123",
        '{"mobile_phone_number": "2125550123"}',
        "tel 212 555 0123",
        "fax: 2125550123",
    ],
)
def test_bare_or_spaced_phone_numbers_are_redacted_after_a_keyword(text: str) -> None:
    """Ten bare or spaced digits are a phone number right after ``phone``, ``tel``, ``fax``."""
    assert redacted(text, "phone").count("[REDACTED:phone]") == 1


@pytest.mark.parametrize(
    "text",
    [
        "order 2125550123 shipped",
        "sizes 512 256 1024",
        "123-456-7890",  # area code starting with 1
        "212-055-0123",  # exchange starting with 0
        "212-555.0123",  # mixed separators
        "2024-01-15",
        "1.212.555.0123.4",
        "call 555-0123",
    ],
)
def test_numbers_that_are_not_phone_numbers_are_left(text: str) -> None:
    """Bare ten-digit ids, counts, invalid area codes, mixed separators and dates are kept."""
    assert_kept(text, "phone")


# -- card -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555 5555 5555 4444",
        "2223003122003222",
        "378282246310005",
        "3782 822463 10005",
        "6011 1111 1111 1117",
        "30569309025904",
        "3530111333300000",
        "4222222222222",
        "6200000000000005",
    ],
)
def test_card_numbers_passing_luhn_are_redacted(value: str) -> None:
    """Network-prefixed numbers with a valid check digit are redacted, grouped or not."""
    for text in (
        f"charge failed for card {value}: declined",
        json.dumps({"message": "x", "exc_text": f"ValueError: card\n{value}"}),
    ):
        result = redacted(text, "card")
        assert "[REDACTED:card]" in result
        assert value not in result


@pytest.mark.parametrize(
    "text",
    [
        "reference 4111111111111112 failed the check digit",
        "epoch ms 1705312496789",
        "epoch us 1705312496789123",
        f"id {luhn_complete('7' + '0' * 14)}",  # Luhn-valid, no card network starts with 7
        f"id {luhn_complete('4' + '1' * 13)}",  # Visa prefix, but 15 digits
        "amount 1,234,567.89",
        "float 0.4111111111111111",
    ],
)
def test_numbers_that_are_not_cards_are_left(text: str) -> None:
    """Failing Luhn, a wrong network or length, epoch times and decimals are kept."""
    assert_kept(text, "card")


def test_card_right_after_another_number_is_still_found() -> None:
    """A candidate that fails its check does not hide a card that overlaps it."""
    assert redacted("qty 1200 4111 1111 1111 1111 ok", "card") == "qty 1200 [REDACTED:card] ok"
    assert redacted("ids 4111111111111112 4111111111111111", "card") == (
        "ids 4111111111111112 [REDACTED:card]"
    )


# -- aws_key ----------------------------------------------------------------------------

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "text",
    [
        "using key AKIAIOSFODNN7EXAMPLE",
        "session ASIAY34FZKBOKMUTVV7A expires",
        f"aws_secret_access_key={SECRET_KEY}",
        f"AWS_SECRET_ACCESS_KEY = {SECRET_KEY}",
        json.dumps({"credentials": {"SecretAccessKey": SECRET_KEY}}),
        f"{{'secret_key': '{SECRET_KEY}'}}",
    ],
)
def test_aws_key_ids_and_labelled_secret_keys_are_redacted(text: str) -> None:
    """Access key ids anywhere, and 40-character secret keys right after a ``secret`` word."""
    result = redacted(text, "aws_key")
    assert result.count("[REDACTED:aws_key]") == 1
    assert "AKIA" not in result
    assert SECRET_KEY not in result


@pytest.mark.parametrize(
    "text",
    [
        "secret_hash: da39a3ee5e6b4b0d3255bfef95601890afd80709",  # SHA-1, even when labelled
        f"blob {SECRET_KEY}",  # no secret keyword
        "AKIAIOSFODNN7EXAMPL",  # too short
        "XAKIAIOSFODNN7EXAMPLE",
        "rotating secret for tenant 12",
    ],
)
def test_hashes_and_unlabelled_strings_are_not_aws_keys(text: str) -> None:
    """Hex hashes, unlabelled base64 and look-alike ids are kept."""
    assert_kept(text, "aws_key")


# -- jwt --------------------------------------------------------------------------------

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


@pytest.mark.parametrize(
    "text",
    [
        f"session token {JWT} expired",
        f"token={JWT}",
        json.dumps({"message": f"bad token\n{JWT}"}),
        "unsigned eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    ],
)
def test_json_web_tokens_are_redacted(text: str) -> None:
    """Three base64url segments starting with ``eyJ`` are redacted, even unsigned."""
    result = redacted(text, "jwt")
    assert result.count("[REDACTED:jwt]") == 1
    assert "eyJ" not in result


@pytest.mark.parametrize("text", ["eyJ alone", "eyJhbGciOiJIUzI1NiJ9 only a header", "keyJar.x.y"])
def test_strings_that_are_not_whole_tokens_are_left(text: str) -> None:
    """A header segment alone, or ``eyJ`` inside a word, is kept."""
    assert_kept(text, "jwt")


# -- auth_header ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.DEF-123_xyz", "Authorization: Bearer [REDACTED:auth_header]"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic [REDACTED:auth_header]"),
        (
            "headers {'Authorization': 'Bearer abcdef123456', 'Accept': 'x'}",
            "headers {'Authorization': 'Bearer [REDACTED:auth_header]', 'Accept': 'x'}",
        ),
        (
            '{"Authorization": "Token 9f8e7d6c5b4a"}',
            '{"Authorization": "Token [REDACTED:auth_header]"}',
        ),
        (
            '"headers: {\\"Authorization\\": \\"Bearer abc123\\"}"',
            '"headers: {\\"Authorization\\": \\"Bearer [REDACTED:auth_header]\\"}"',
        ),
        (
            "Proxy-Authorization: Basic Zm9vOmJhcg==",
            "Proxy-Authorization: Basic [REDACTED:auth_header]",
        ),
        ("Authorization=abc123def", "Authorization=[REDACTED:auth_header]"),
        ("using bearer abcdefghijklmnop1234", "using bearer [REDACTED:auth_header]"),
    ],
)
def test_authorization_credentials_are_redacted_keeping_the_scheme(
    text: str, expected: str
) -> None:
    """The credential after ``Authorization:`` is replaced; the scheme word stays."""
    assert redacted(text, "auth_header") == expected


@pytest.mark.parametrize(
    "text",
    [
        "Authorization failed for user 42",
        "Authorization: Bearer",
        "the bearer of bad news",
        "missing Authorization header",
    ],
)
def test_authorization_prose_is_left(text: str) -> None:
    """The words alone, or a scheme with no credential, are kept."""
    assert_kept(text, "auth_header")


# -- url_password -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "connecting to postgres://app:s3cr3t!pw@db.example.com:5432/app",
            "connecting to postgres://app:[REDACTED:url_password]@db.example.com:5432/app",
        ),
        (
            "broker redis://:pw0rd@cache:6379/0",
            "broker redis://:[REDACTED:url_password]@cache:6379/0",
        ),
        ("amqp://etl:p@ss@mq//", "amqp://etl:[REDACTED:url_password]@mq//"),
        ("url='https://u:p%40ss@h/x'", "url='https://u:[REDACTED:url_password]@h/x'"),
        (
            '{"dsn": "mysql://u:p\\"w@h/db"}',
            '{"dsn": "mysql://u:[REDACTED:url_password]@h/db"}',
        ),
    ],
)
def test_url_passwords_are_redacted_and_the_rest_kept(text: str, expected: str) -> None:
    """Only the password between ``user:`` and ``@host`` is replaced."""
    assert redacted(text, "url_password") == expected


@pytest.mark.parametrize(
    "text",
    [
        "GET https://api.example.com:8443/v1/items?page=2",
        "ssh://git@github.com/org/repo.git",
        "redis://localhost:6379/0 and later a@b",
        "s3://bucket/2024/01/15/file.json",
    ],
)
def test_urls_without_a_password_are_left(text: str) -> None:
    """Ports, user names without a password and plain URLs are kept."""
    assert_kept(text, "url_password")


# -- Whole records ------------------------------------------------------------------------


def _record(msg: str, args: tuple[object, ...], exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("rows rejected:\njane@example.com\n4111 1111 1111 1111")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("datafiles.tasks", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_text_record_with_arguments_and_traceback_is_redacted() -> None:
    """A formatted text record keeps its shape; every value in message and traceback goes."""
    formatter = build_formatter("%(levelname)s %(message)s", task_id=TASK_ID, task_name="t")
    record = _record("contact=%r", ({"email": "ana@example.org", "phone": "2125550123"},), True)
    result = redacted(formatter.format(record))
    assert "ana@example.org" not in result
    assert "jane@example.com" not in result
    assert "4111" not in result
    assert "2125550123" not in result
    assert "Traceback (most recent call last):" in result
    assert result.startswith(
        "ERROR contact={'email': '[REDACTED:email]', 'phone': '[REDACTED:phone]'}\n"
    )
    assert result.endswith("ValueError: rows rejected:\n[REDACTED:email]\n[REDACTED:card]")


def test_json_record_stays_valid_json_after_redaction() -> None:
    """Values right after ``\\n`` escapes are redacted without breaking the JSON line."""
    formatter = build_formatter("json", task_id=TASK_ID, task_name="t")
    record = _record("sent to %s", ("kofi@example.com",), True)
    setattr(record, "extra_ssn", "123-45-6789")  # noqa: B010 - an extra= field
    result = redacted(formatter.format(record))
    parsed = json.loads(result)
    assert parsed["message"] == "sent to [REDACTED:email]"
    assert parsed["exc_text"].endswith("rows rejected:\n[REDACTED:email]\n[REDACTED:card]")
    assert parsed["extra"]["extra_ssn"] == "[REDACTED:ssn]"
    assert parsed["task_id"] == TASK_ID


@pytest.mark.parametrize(
    "value",
    ["\tjane@example.com", "\x07jane@example.com", "\n4111111111111111", "\r123-45-6789"],
)
def test_values_glued_to_json_escapes_keep_the_line_valid(value: str) -> None:
    """A value right after ``\\t``, ``\\u0007`` or ``\\n`` is redacted and the escape kept."""
    line = json.dumps({"message": value}, ensure_ascii=False)
    message = json.loads(redacted(line))["message"]
    assert message.startswith(value[0] + "[REDACTED:")
    assert value[1:] not in message


def test_several_values_of_several_kinds_in_one_line() -> None:
    """Each value in a long line is found, whatever comes before it."""
    text = (
        f"{TS} a@example.com 4111111111111111 b@example.com 212-555-0123 "
        f"123-45-6789 {JWT} AKIAIOSFODNN7EXAMPLE redis://:pw12345678@h/0 "
        "Authorization: Bearer tok123 c@example.com 5555555555554444"
    )
    result = redacted(text)
    for name, count in [
        ("email", 3),
        ("card", 2),
        ("phone", 1),
        ("ssn", 1),
        ("jwt", 1),
        ("aws_key", 1),
        ("url_password", 1),
        ("auth_header", 1),
    ]:
        assert result.count(f"[REDACTED:{name}]") == count, (name, result)


@pytest.mark.parametrize(
    "text",
    [
        f"{TS} parsed 1234 rows from data_file_000123.csv in 0.52s",
        "period 2024-01-15 to 2024-02-15T23:59:59.999999+00:00",
        "scheduled 2024-01-15 12:34:56,789 next 15/01/2024 08:00 stamp 20240115T123456Z",
        "total 1,234,567.89 EUR, fee $12.50, balance -1234567.00",
        f"Task proj.parse[{TASK_ID}] succeeded in 0.532s: None",
        "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "record R00012 invoice INV-2024-000123 ticket OPS-88123",
        "order 4829103756 shipped, order 2125550123 packed",
        "client 10.0.3.17:54321, worker-12.internal, v2.14.3",
        "object at 0x7f3a2c1d4e50, 123456789 bytes, took 1234567 us",
        "ISBN 978-0-306-40615-7",
    ],
)
def test_everyday_log_text_is_left_as_the_same_object(text: str) -> None:
    """Dates, timestamps, amounts, UUIDs, hashes, record ids and order numbers are kept."""
    assert_kept(text)


def test_redact_returns_the_same_object_when_candidates_are_declined() -> None:
    """A line whose candidates all fail their checks comes back as the very same object."""
    text = "ref 4111111111111112 ssn 000-12-3456 id 123456789 secret_hash: " + "ab" * 20
    assert_kept(text)


# -- Registered secrets ---------------------------------------------------------------------


def test_registered_secret_is_redacted_with_its_name() -> None:
    """A registered value becomes ``[REDACTED:<name>]`` wherever it appears."""
    redactor = Redactor.from_entries(["secrets"])  # built before the secret is known
    assert redactor.redact("login with hunter2hunter2") == "login with hunter2hunter2"
    register_secret("hunter2hunter2", "db_password")
    assert redactor.redact("login with hunter2hunter2, again hunter2hunter2!") == (
        "login with [REDACTED:db_password], again [REDACTED:db_password]!"
    )


def test_registered_secret_is_found_in_its_escaped_and_encoded_forms() -> None:
    """JSON-escaped, repr-escaped and percent-encoded forms of a secret are redacted too."""
    secret = 'pa"ss w/rd\\x'
    register_secret(secret, "broker")
    texts = [
        json.dumps({"password": secret}),
        repr({"password": secret}),
        "amqp://u:pa%22ss%20w%2Frd%5Cx@mq//",
        "form pa%22ss+w%2Frd%5Cx sent",
    ]
    for text in texts:
        result = redacted(text, "secrets")
        assert "[REDACTED:broker]" in result, text
        assert "ss w" not in result and "ss%20w" not in result and "ss+w" not in result


def test_registered_secret_wins_over_the_built_ins() -> None:
    """A secret inside a URL is named by its registration, and not redacted twice."""
    register_secret("pw-4f7a9c2e", "redis_password")
    assert redacted("broker redis://:pw-4f7a9c2e@cache:6379/0") == (
        "broker redis://:[REDACTED:redis_password]@cache:6379/0"
    )


def test_longer_secret_is_replaced_whole_when_it_holds_a_shorter_one() -> None:
    """Of two overlapping secrets, the longer is matched first."""
    register_secret("abcdefgh", "short")
    register_secret("abcdefgh-ijkl", "long")
    assert redacted("x abcdefgh-ijkl y abcdefgh", "secrets") == (
        "x [REDACTED:long] y [REDACTED:short]"
    )


def test_short_secret_is_refused() -> None:
    """A value under the minimum length would mask ordinary words and is refused."""
    with pytest.raises(ValueError, match=f"at least {MIN_SECRET_LENGTH} characters"):
        register_secret("admin", "weak")
    register_secret("x" * MIN_SECRET_LENGTH)
    assert redacted("x" * MIN_SECRET_LENGTH, "secrets") == "[REDACTED:secret]"


@pytest.mark.parametrize("name", ["", "has space", "close]bracket", "x" * 65])
def test_secret_name_must_be_simple(name: str) -> None:
    """A name that could not be read back in a marker is refused."""
    with pytest.raises(ValueError, match="secret name"):
        register_secret("long-enough-value", name)


def test_secret_must_be_a_string() -> None:
    """Bytes or numbers are refused with a TypeError."""
    with pytest.raises(TypeError):
        register_secret(b"long-enough-value")  # type: ignore[arg-type]


def test_forget_secrets_stops_redacting_them() -> None:
    """After ``forget_secrets`` the value is written as it is."""
    register_secret("hunter2hunter2")
    forget_secrets()
    assert_kept("login with hunter2hunter2", "secrets")


def test_secrets_are_only_redacted_when_the_entry_asks_for_them() -> None:
    """A redactor built without ``secrets`` leaves registered values alone."""
    register_secret("hunter2hunter2")
    assert_kept("login with hunter2hunter2", "email")


# -- Entries ------------------------------------------------------------------------------


def test_regular_expression_entry_is_redacted_as_pattern() -> None:
    """A custom expression's whole match becomes ``[REDACTED:pattern]``."""
    assert redacted("patient MRN-00123456 admitted", r"MRN-\d{8}") == (
        "patient [REDACTED:pattern] admitted"
    )


def test_regular_expression_entry_with_a_secret_group_keeps_the_rest() -> None:
    """Only the group named ``secret`` is replaced, and inline flags work."""
    entry = r"(?i)password\s*[=:]\s*(?P<secret>[^\s,]+)"
    assert redacted("login PASSWORD=letmein, user=bob", entry) == (
        "login PASSWORD=[REDACTED:pattern], user=bob"
    )


def test_custom_entries_run_after_the_built_ins() -> None:
    """Built-ins and custom expressions combine; each replaces its own values."""
    result = redacted("jane@example.com MRN-00123456", "email", r"MRN-\d{8}")
    assert result == "[REDACTED:email] [REDACTED:pattern]"


def test_only_the_chosen_built_ins_run() -> None:
    """A redactor of ``email`` leaves cards, SSNs and phone numbers alone."""
    text = "jane@example.com 4111111111111111 123-45-6789 212-555-0123 ssn=123456789"
    assert redacted(text, "email") == (
        "[REDACTED:email] 4111111111111111 123-45-6789 212-555-0123 ssn=123456789"
    )
    assert redacted(text, "phone") == (
        "jane@example.com 4111111111111111 123-45-6789 [REDACTED:phone] ssn=123456789"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("emial", "'emial' is not a built-in name"),
        ("SSN", "did you mean 'ssn'?"),
        (" email", "did you mean 'email'?"),
        ("(unclosed", "is not a valid regular expression"),
        ("a*", "matches the empty string"),
        ("", "an empty entry"),
        (42, "42 is not a string"),
    ],
)
def test_unusable_entries_are_explained(entry: object, message: str) -> None:
    """``entry_problem`` says why, and building a redactor raises ValueError naming it."""
    problem = entry_problem(entry)
    assert problem is not None and message in problem
    with pytest.raises(ValueError, match=re.escape(message)):
        Redactor.from_entries(["email", entry])  # type: ignore[list-item]


def test_unknown_name_hint_shows_how_to_redact_a_word() -> None:
    """The message for an unknown name lists the built-ins and the regular-expression form."""
    problem = entry_problem("password")
    assert problem is not None
    assert "ssn, email" in problem and "\\bpassword\\b" in problem
    assert entry_problem(r"\bpassword\b") is None


def test_usable_entries_have_no_problem() -> None:
    """Every built-in name and a valid expression are usable."""
    for entry in [*BUILTIN_NAMES, r"MRN-\d{8}", "[A-Z]{3}-\\d+"]:
        assert entry_problem(entry) is None


def test_a_string_instead_of_a_list_is_refused() -> None:
    """``CELERY_PARSELOG_REDACT = "email"`` is a mistake, not a list of five letters."""
    with pytest.raises(ValueError, match="not the string"):
        Redactor.from_entries("email")


def test_redactor_truth_entries_and_repr() -> None:
    """No entries is false; entries are kept once each, in order."""
    assert not Redactor.from_entries([])
    assert Redactor.from_entries(["secrets"])
    redactor = Redactor.from_entries(["email", "card", "email"])
    assert redactor.entries == ("email", "card")
    assert repr(redactor) == "Redactor(['email', 'card'])"


def test_empty_redactor_changes_nothing() -> None:
    """A redactor of no entries returns every text as it is."""
    text = "jane@example.com 4111111111111111"
    assert Redactor.from_entries([]).redact(text) is text


def test_one_redactor_is_shared_by_threads() -> None:
    """Threads redacting at once, while a secret is registered, all get correct results."""
    text = "jane@example.com paid with 4111 1111 1111 1111 using hunter2hunter2"
    results: list[str] = []

    def work() -> None:
        for _ in range(200):
            results.append(ALL.redact(text))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    register_secret("hunter2hunter2", "pw")
    for thread in threads:
        thread.join()
    assert len(results) == 800
    for result in results:
        assert result.startswith("[REDACTED:email] paid with [REDACTED:card] using ")
    assert ALL.redact(text).endswith("using [REDACTED:pw]")


def test_default_set_is_every_built_in_but_the_opt_in_ones() -> None:
    """The default entries are every built-in name, secrets included, except identifiers."""
    assert OPT_IN_NAMES == ("identifiers",)
    assert [name for name in BUILTIN_NAMES if name not in OPT_IN_NAMES] == DEFAULT_REDACT
    assert "secrets" in DEFAULT_REDACT
    assert "identifiers" in BUILTIN_NAMES
    assert Redactor.from_entries([*DEFAULT_REDACT, "identifiers"])


# -- Generated corpora ------------------------------------------------------------------


def test_no_generated_sensitive_value_survives_redaction() -> None:
    """In 2,000 generated lines every sensitive value is gone and JSON lines still parse."""
    for secret in REGISTERED_SECRETS:
        register_secret(secret, "broker_password")
    lines = sensitive_lines(2000)
    present = 0
    for line in lines:
        result = ALL.redact(line.text)
        if line.json:
            json.loads(result)
        for name, value in line.values:
            if value in line.text:
                present += 1
                assert value not in result, (name, value, result)
                assert f"[REDACTED:{name}]" in result, (name, value, result)
    assert present > 2000  # most lines hold a value in their text, several hold more


def test_false_positive_rate_on_clean_lines_is_low() -> None:
    """On 5,000 generated clean lines, at most 0.5% are changed; the rate is printed."""
    lines = clean_lines(5000)
    changed = [line for line in lines if ALL.redact(line) is not line]
    rate = len(changed) / len(lines)
    print(f"\nredaction false positives: {len(changed)}/{len(lines)} lines = {rate:.2%}")
    for line in changed:
        print("  ", ALL.redact(line)[:160])
    assert rate <= MAX_FALSE_POSITIVE_RATE


def test_corpora_are_deterministic() -> None:
    """The same seed gives the same lines, so failures can be reproduced."""
    assert clean_lines(50) == clean_lines(50)
    assert sensitive_lines(50) == sensitive_lines(50)


# -- identifiers --------------------------------------------------------------------------

WITH_IDENTIFIERS = Redactor.from_entries([*DEFAULT_REDACT, "identifiers"])
RECORD = (
    "T2202106111111111121219850312123456789122122200000000000000000000001200000000000"
    "0000000000000000000000000000000000000000000000000000000000000001"
)
ID = "[REDACTED:identifiers]"

# The corpus of identifiers must lose no value; clean operational lines may lose a value
# in at most this share of lines (one in fifty): shapes alone cannot tell every id from
# a case number, and a miss costs far more than a masked count.
MAX_OPERATIONAL_FALSE_POSITIVE_RATE = 0.02


def with_identifiers(text: str) -> str:
    return WITH_IDENTIFIERS.redact(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "DETAIL:  Failing row contains (4812, 11111111112, 1, 2, 19850312, 123456789, null).",
            f"DETAIL:  Failing row contains (4812, {ID}, 1, 2, {ID}, {ID}, null).",
        ),
        (
            'Key ("CASE_NUMBER", "RPT_MONTH_YEAR", "SSN")=(11111111112, 202210, 267390412) '
            "already exists.",
            f'Key ("CASE_NUMBER", "RPT_MONTH_YEAR", "SSN")=({ID}, 202210, {ID}) already exists.',
        ),
        (
            "Partial Hash Field Values: T2 202108 61104950444 3 20171206 060707712",
            f"Partial Hash Field Values: T2 202108 {ID} 3 {ID} {ID}",
        ),
        (
            "{'RPT_MONTH_YEAR': 202106, 'DOB': '19880317'}",
            f"{{'RPT_MONTH_YEAR': 202106, 'DOB': '{ID}'}}",
        ),
        (
            "Record(s) info: [('T1', '23341932924', 202106), ('T2', 'AB1234567', 202106)]",
            f"Record(s) info: [('T1', '{ID}', 202106), ('T2', '{ID}', 202106)]",
        ),
        ("SSN(s): 123456789, 987654320", f"SSN(s): {ID}, {ID}"),
        ("{'ssns': ['123456789', '987654320']}", f"{{'ssns': ['{ID}', '{ID}']}}"),
        (
            "the SSN given for the second adult of household 3 was 123456789",
            f"the SSN given for the second adult of household 3 was {ID}",
        ),
        ("member 2: 987-65-4320 and 123 45 6789", f"member 2: {ID} and {ID}"),
        ("DOB 1985-03-12, 03/12/1985 or 3/2/1985", f"DOB {ID}, {ID} or {ID}"),
        ("case A12345678901 and account 5551234987", f"case {ID} and account {ID}"),
        ("encrypted SSN B0BPBQYYB, and @9ZP0#YBW alone", f"encrypted SSN {ID}, and {ID} alone"),
    ],
)
def test_identifiers_masks_the_shapes_of_a_records_parser(text: str, expected: str) -> None:
    """SSNs as bare digits anywhere (plural, far from their keyword, any range), dates of
    birth in three forms, case and account numbers of digits or letters and digits, and
    digit-substituted SSNs become markers; report months and short numbers stay."""
    assert with_identifiers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"Record length is 153 characters but must be 156: {RECORD}",
        f"value not valid for record '{RECORD}'",
        f"{RECORD[:40]}@9ZP0#YBW{RECORD[49:]}",
        f"{RECORD[:60]}     0 0 {RECORD[70:]}   ",
    ],
)
def test_identifiers_masks_a_raw_record_line_whole(text: str) -> None:
    """A fixed-width record line, with its digit-substituted SSN or blank fields, becomes
    one marker: no stretch of it is left."""
    result = with_identifiers(text)
    assert result.count(ID) == 1, result
    digits = re.findall(r"\d+", result)
    assert all(len(run) < 4 for run in digits), result


def test_identifiers_keeps_json_lines_valid() -> None:
    """In a JSON line, a record right after an escaped newline is masked, a number masked
    where it stood becomes a string, and the line parses."""
    line = json.dumps({"message": f"bad line:\n{RECORD}\nDOB 1985-03-12", "ssn": 123456789})
    result = with_identifiers(line)
    assert json.loads(result) == {
        "message": f"bad line:\n{ID}\nDOB {ID}",
        "ssn": "[REDACTED:ssn]",
    }


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15T08:00:00.123Z INFO datafiles.tasks: parsed 1234 records of 202106",
        "[2024-01-15 08:00:00,123: INFO/ForkPoolWorker-3] Task proj.parse"
        "[5b0c7f2e-9d1a-4c3b-8e7f-123456789012] succeeded in 0.004562812997028232s: None",
        "stored parselog/proj.parse/20240115T080000Z-5b0c7f2e-9d1a-4c3b-8e7f-6a5b4c3d2e1f-1.log.gz",
        "sha256=0123456789012345678901234567890123456789a123456789012345678901",
        "file ADS.E2J.FTP1.TS06 (data file 4812345) took 1234 ms, rss 7654321 kB",
        "scheduled at 05/26/2024 03:04:50, next 2024-05-27 03:04:50",
        "RPT_MONTH_YEAR=202106 quarter 2021Q2 section 1",
    ],
)
def test_identifiers_leaves_operational_text(text: str) -> None:
    """Timestamps, Celery's full-precision durations, task ids, keys, hashes, file names,
    ids under eight digits and report months come through as the same object."""
    assert with_identifiers(text) is text


def test_identifiers_is_not_in_the_default_set() -> None:
    """Without opting in, a bare SSN and a record line stay: the defaults do not mask them."""
    text = f"SSN(s): 123456789 in {RECORD}"
    assert ALL.redact(text) is text
    assert Redactor.from_entries(["identifiers"]).redact(text) == f"SSN(s): {ID} in {ID}"


def test_no_identifier_of_the_records_corpus_survives() -> None:
    """On 2,000 generated lines in every shape such a parser logs, with identifiers added to
    the defaults, no SSN, date of birth, case number or record line survives, nor any
    40-character stretch of a record line, and JSON lines still parse; the default set
    alone lets most of them through. Both figures are printed."""
    lines = identifier_lines(2000)
    present = survived = survived_default = 0
    for line in lines:
        result = with_identifiers(line.text)
        if line.json:
            json.loads(result)
        for _name, value in line.values:
            if value not in line.text:
                continue  # written escaped in a JSON line or a repr; counted in its other form
            present += 1
            survived += value in result
            survived_default += value in ALL.redact(line.text)
            assert value not in result, (value, result)
            for cut in range(0, max(1, len(value) - 40), 10):
                assert value[cut : cut + 40] not in result or len(value) < 40, (value, result)
    print(
        f"\nidentifiers corpus: {present} values, {survived} survive with identifiers, "
        f"{survived_default} ({survived_default / present:.0%}) with the default set alone"
    )
    assert present > 4000
    assert survived == 0
    assert survived_default > present / 2


def test_false_positive_rate_of_identifiers_on_operational_lines() -> None:
    """On 5,000 generated clean operational lines, with identifiers added to the defaults,
    at most 2% of lines are changed; the rate is printed."""
    lines = operational_lines(5000)
    changed = [line for line in lines if with_identifiers(line) is not line]
    rate = len(changed) / len(lines)
    print(f"\nidentifiers false positives: {len(changed)}/{len(lines)} lines = {rate:.2%}")
    for line in changed[:20]:
        print("  ", with_identifiers(line)[:160])
    assert rate <= MAX_OPERATIONAL_FALSE_POSITIVE_RATE


def test_identifiers_also_masks_the_generic_corpus_values() -> None:
    """The generic sensitive corpus loses every value with identifiers added too."""
    for secret in REGISTERED_SECRETS:
        register_secret(secret, "broker_password")
    for line in sensitive_lines(600):
        result = with_identifiers(line.text)
        for _name, value in line.values:
            if value in line.text:
                assert value not in result, (value, result)


def test_identifier_corpora_are_deterministic() -> None:
    """The same seed gives the same lines."""
    assert identifier_lines(40) == identifier_lines(40)
    assert operational_lines(40) == operational_lines(40)


# -- Values outside log lines -----------------------------------------------------------------


def test_redact_json_covers_keys_numbers_and_keyword_context() -> None:
    """Arguments redacted as one JSON text: a string or an integer under an "ssn" key, an
    e-mail address as a dict key; unmasked numbers stay numbers and the rest is kept."""
    value = {
        "ssn": "123456789",
        "tax_id": 219099999,
        "jane@example.com": {"rows": 12, "ratio": 0.5, "ok": True, "none": None},
        "ids": [1, 2, 3],
    }
    assert redact_json(value, ALL.redact) == {
        "ssn": "[REDACTED:ssn]",
        "tax_id": "[REDACTED:ssn]",
        "[REDACTED:email]": {"rows": 12, "ratio": 0.5, "ok": True, "none": None},
        "ids": [1, 2, 3],
    }


def test_redact_json_masks_bare_numbers_with_identifiers() -> None:
    """With identifiers, an integer case number among positional arguments is masked."""
    assert redact_json([4812, 11111111112, "202106"], WITH_IDENTIFIERS.redact) == [
        4812,
        ID,
        "202106",
    ]


def test_redact_json_returns_the_value_itself_when_nothing_is_masked() -> None:
    """Nothing to mask: the very value passed in comes back."""
    value = {"data_file_id": 4812, "names": ["a", "b"]}
    assert redact_json(value, ALL.redact) is value


def test_redact_json_keeps_masked_keys_that_collide_apart() -> None:
    """Two keys masked to the same marker are both kept."""
    result = redact_json({"a@example.com": 1, "b@example.com": 2}, ALL.redact)
    assert sorted(result.values()) == [1, 2]
    assert all(key.startswith("[REDACTED:email]") for key in result)


def test_redact_json_falls_back_to_each_value_when_a_pattern_breaks_the_json() -> None:
    """A custom pattern matching JSON syntax cannot break the result: values are redacted
    one by one instead, with their key as context."""
    redactor = Redactor.from_entries([r'"\s*:', "ssn"])
    assert redact_json({"ssn": "123456789", "n": 1}, redactor.redact) == {
        "ssn": "[REDACTED:ssn]",
        "n": 1,
    }


def test_redact_value_uses_the_parameter_name_as_context() -> None:
    """A bare SSN under a parameter named like an SSN is masked by the default set; the
    same value under another name, or none, is kept; an address is masked anyway."""
    assert redact_value("123456789", ALL.redact, name="ssn") == "[REDACTED:ssn]"
    assert redact_value(123456789, ALL.redact, name="data_file_id") == "123456789"
    assert redact_value("jane@example.com", ALL.redact) == "[REDACTED:email]"
    assert redact_value(11111111112, WITH_IDENTIFIERS.redact, name="case") == ID


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"ssn": 123456789, "n": 1}', {"ssn": "[REDACTED:ssn]", "n": 1}),
        ('{"tax_id": [219099999], "n": [1]}', {"tax_id": ["[REDACTED:ssn]"], "n": [1]}),
        ('{"m": "ssn: 123456789, 1"}', {"m": "ssn: [REDACTED:ssn], 1"}),
        ('{"m": "a \\" ssn: 123456789, 1"}', {"m": 'a " ssn: [REDACTED:ssn], 1'}),
    ],
)
def test_a_number_masked_in_a_json_line_becomes_a_string(
    line: str, expected: dict[str, object]
) -> None:
    """A masked JSON number is written as a quoted marker; inside a string it is not quoted."""
    assert json.loads(ALL.redact(line)) == expected


def test_identifiers_masks_a_record_in_json_nested_in_a_json_line() -> None:
    """A JSON line logged as the message of another JSON line writes the record after
    ``\\\\n``; it is still masked whole, digit-substituted SSN included."""
    inner = json.dumps({"exc_text": f"cannot parse line 4:\n{RECORD[:40]}@9ZP0#YBW{RECORD[49:]}"})
    outer = json.dumps({"message": f"corpus line: {inner}"})
    result = with_identifiers(outer)
    assert "@9ZP0#YBW" not in result
    assert json.loads(json.loads(result)["message"][len("corpus line: ") :]) == {
        "exc_text": f"cannot parse line 4:\n{ID}"
    }
