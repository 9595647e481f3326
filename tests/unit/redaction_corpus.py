"""Synthetic log lines for the redaction tests and benchmarks: with sensitive values, and clean.

Every value is generated here from a fixed seed, so runs are repeatable and no real
person's data is involved. Lines are made the way a run's log makes them: records
with arguments, extras and real exceptions are passed through the package's own
text and JSON formatters, so the redactor sees exactly the text it will see in a
worker (tracebacks, ``repr`` of arguments, JSON escapes such as ``\\n``).

:func:`sensitive_lines` gives lines together with the values they hold, so a test can
check that none survives redaction. :func:`clean_lines` gives lines that hold nothing
to redact but plenty that looks like it (dates, ids, amounts, hashes, long numbers);
the benchmarks reuse it as typical log text.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import string
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from celery_parselog.formatting import build_formatter

__all__ = [
    "SEED",
    "LineFormatter",
    "SensitiveLine",
    "clean_lines",
    "luhn_complete",
    "raised",
    "sensitive_lines",
]

SEED = 20240115
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_FIRST = ("jane", "john", "maria", "wei", "amir", "olga", "kofi", "lucia", "sven", "ana")
_LAST = ("doe", "smith", "garcia", "chen", "haddad", "ivanova", "mensah", "rossi", "berg")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.co.uk", "test.example.io")
_LOGGERS = ("datafiles.tasks", "billing.tasks", "people.import", "crm.sync", "etl.steps")
_LEVELS = (logging.INFO, logging.WARNING, logging.ERROR)
_ALNUM = string.ascii_letters + string.digits
_BASE32 = string.ascii_uppercase + "234567"
_B64 = string.ascii_letters + string.digits + "+/"
_PASSWORD_CHARS = string.ascii_letters + string.digits + "!$%&*-_~;=,"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


@dataclass(frozen=True)
class SensitiveLine:
    """One formatted line and the sensitive values it holds, each with its built-in name."""

    text: str
    values: tuple[tuple[str, str], ...]  # (built-in name, value as written)
    json: bool


def luhn_complete(partial: str) -> str:
    """``partial`` followed by the digit that makes it pass the Luhn check."""
    total = 0
    for position, ch in enumerate(reversed(partial)):
        value = int(ch)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return partial + str((10 - total % 10) % 10)


# -- Value generators ------------------------------------------------------------------


class _Values:
    """Random but valid sensitive values of each kind, in the formats people write them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _digits(self, count: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(count))

    def ssn_parts(self) -> tuple[str, str, str]:
        area = self.rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}", f"{self.rng.randint(1, 99):02d}", f"{self.rng.randint(1, 9999):04d}"

    def ssn(self) -> str:
        return "-".join(self.ssn_parts())

    def ssn_labelled(self) -> str:
        """An SSN in a form that only counts after a keyword: bare or spaced."""
        parts = self.ssn_parts()
        return self.rng.choice(["".join(parts), " ".join(parts)])

    def _nanp(self) -> tuple[str, str, str]:
        npa = f"{self.rng.randint(2, 9)}{self._digits(2)}"
        nxx = f"{self.rng.randint(2, 9)}{self._digits(2)}"
        return npa, nxx, self._digits(4)

    def phone(self) -> str:
        a, b, c = self._nanp()
        forms = (
            f"({a}) {b}-{c}",
            f"({a}){b}-{c}",
            f"{a}-{b}-{c}",
            f"{a}.{b}.{c}",
            f"+1 {a} {b} {c}",
            f"+1-{a}-{b}-{c}",
            f"+1{a}{b}{c}",
            f"1-{a}-{b}-{c}",
            f"+1 ({a}) {b}-{c}",
            f"1 ({a}) {b}-{c}",
        )
        return self.rng.choice(forms)

    def phone_labelled(self) -> str:
        """A phone number in a form that only counts after a keyword: bare or spaced."""
        a, b, c = self._nanp()
        return self.rng.choice([f"{a}{b}{c}", f"1{a}{b}{c}", f"{a} {b} {c}"])

    def card(self) -> str:
        prefix, length = self.rng.choice(
            [
                ("4", 16),
                ("4", 13),
                ("4", 19),
                ("51", 16),
                ("55", 16),
                ("2221", 16),
                ("2720", 16),
                ("34", 15),
                ("37", 15),
                ("36", 14),
                ("6011", 16),
                ("65", 16),
                ("3530", 16),
                ("62", 17),
            ]
        )
        number = luhn_complete(prefix + self._digits(length - len(prefix) - 1))
        if length == 15 and self.rng.random() < 0.6:
            separator = self.rng.choice(" -")
            return separator.join((number[:4], number[4:10], number[10:]))
        if length in (16, 19) and self.rng.random() < 0.6:
            separator = self.rng.choice(" -")
            return separator.join(number[i : i + 4] for i in range(0, length, 4))
        return number

    def email(self) -> str:
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        local = self.rng.choice(
            [
                f"{first}.{last}",
                f"{first}_{last}{self.rng.randint(1, 99)}",
                f"{first[0]}{last}",
                f"{first}+{self.rng.choice(['orders', 'news', 'x1'])}",
            ]
        )
        return f"{local}@{self.rng.choice(_DOMAINS)}"

    def aws_key_id(self) -> str:
        return self.rng.choice(["AKIA", "ASIA"]) + "".join(
            self.rng.choice(_BASE32) for _ in range(16)
        )

    def aws_secret(self) -> str:
        while True:
            value = "".join(self.rng.choice(_B64) for _ in range(40))
            if any(ch not in string.hexdigits for ch in value):
                return value

    def _b64url(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def jwt(self) -> str:
        header = {"alg": self.rng.choice(["HS256", "RS256"]), "typ": "JWT"}
        payload = {"sub": str(self.rng.randint(1000, 99999)), "exp": 1705312496}
        signature = bytes(self.rng.randrange(256) for _ in range(32))
        return ".".join(
            (
                self._b64url(json.dumps(header).encode()),
                self._b64url(json.dumps(payload).encode()),
                self._b64url(signature),
            )
        )

    def token(self) -> str:
        return "".join(self.rng.choice(_ALNUM + "-_.") for _ in range(self.rng.randint(20, 48)))

    def basic(self) -> str:
        user = self.rng.choice(_FIRST)
        return base64.b64encode(f"{user}:{self.password()}".encode()).decode()

    def password(self) -> str:
        length = self.rng.randint(10, 24)
        return "".join(self.rng.choice(_PASSWORD_CHARS) for _ in range(length))

    def url_with_password(self) -> tuple[str, str]:
        scheme = self.rng.choice(["postgres", "redis", "amqp", "mysql", "https", "sftp"])
        user = self.rng.choice(["app", "etl", "reader", "", "svc-parse"])
        password = self.password()
        if self.rng.random() < 0.2:
            password = password[:5] + "@" + password[5:]  # a raw "@", as people do write
        host = self.rng.choice(["db.internal", "cache-1.example.net", "10.0.3.17", "mq"])
        port = self.rng.choice(["", ":5432", ":6379", ":5672"])
        return f"{scheme}://{user}:{password}@{host}{port}/{self.rng.choice(['app', '0', ''])}", (
            password
        )


# -- Records through the real formatters ------------------------------------------------


def raised(message: str) -> ExcInfo:
    """A real exception with a real traceback, raised two frames deep."""

    def inner() -> None:
        raise ValueError(message)

    def outer() -> None:
        inner()

    try:
        outer()
    except ValueError:
        kind, error, traceback = sys.exc_info()
        assert kind is not None and error is not None
        return kind, error, traceback
    raise AssertionError("unreachable")


def random_moment(rng: random.Random) -> datetime:
    """A moment in 2024, to the microsecond."""
    return datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(
        seconds=rng.randint(0, 365 * 86400), microseconds=rng.randint(0, 999999)
    )


def random_stamp(rng: random.Random, *formats: str) -> str:
    """A moment in 2024 as logs write times: ISO 8601 to the microsecond or millisecond,
    logging's asctime, or one of the strftime ``formats``."""
    moment = random_moment(rng)
    written = [moment.isoformat(), moment.isoformat(timespec="milliseconds")]
    written.append(moment.strftime("%Y-%m-%d %H:%M:%S,%f")[:-3])
    return rng.choice([*written, *(moment.strftime(form) for form in formats)])


class LineFormatter:
    """Formats records with the package's text or JSON formatter, at advancing times."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.text = build_formatter(TEXT_FORMAT, task_id=self.task_id, task_name="proj.parse")
        self.json = build_formatter("json", task_id=self.task_id, task_name="proj.parse")
        self.now = datetime(2024, 1, 15, 8, 0, tzinfo=timezone.utc)

    def format(
        self,
        msg: str,
        args: tuple[object, ...] = (),
        *,
        exc: ExcInfo | None = None,
        extra: dict[str, object] | None = None,
        as_json: bool = False,
    ) -> str:
        self.now += timedelta(milliseconds=self.rng.randint(1, 5000))
        level = self.rng.choice(_LEVELS) if exc is None else logging.ERROR
        record = logging.LogRecord(
            self.rng.choice(_LOGGERS), level, __file__, 1, msg, args or None, exc
        )
        record.created = self.now.timestamp()
        record.msecs = (record.created - int(record.created)) * 1000
        for name, value in (extra or {}).items():
            setattr(record, name, value)
        return (self.json if as_json else self.text).format(record)

    def lines_of(
        self,
        makers: Sequence[Callable[[], tuple[str, tuple[object, ...], Any, Any, Any]]],
        count: int,
        raise_error: Callable[[Any], ExcInfo],
        kind: str | None = None,
    ) -> list[SensitiveLine]:
        """``count`` lines from ``makers`` in turn, a third of them JSON.

        A maker gives (message, args, what ``raise_error`` raises or None, extra, values);
        the values are (built-in, value) pairs, or bare values all of built-in ``kind``.
        """
        made: list[SensitiveLine] = []
        for index in range(count):
            msg, args, error, extra, values = makers[index % len(makers)]()
            as_json = self.rng.random() < 1 / 3
            exc = raise_error(error) if error is not None else None
            text = self.format(msg, args, exc=exc, extra=extra, as_json=as_json)
            found = tuple((kind, v) for v in values) if kind else tuple(values)
            made.append(SensitiveLine(text, found, as_json))
        return made

    def clean_lines_of(
        self,
        makers: Sequence[Callable[[], tuple[str, tuple[object, ...]]]],
        count: int,
        raise_error: Callable[[str], ExcInfo],
    ) -> list[str]:
        """``count`` lines from ``makers`` in turn, a quarter of them JSON; one in five has
        extra fields and one in seventeen the traceback ``raise_error`` makes of a bad row."""
        made: list[str] = []
        for index in range(count):
            msg, args = makers[index % len(makers)]()
            row = f"cannot parse row {self.rng.randint(1, 99999)}" if index % 17 == 0 else None
            extra: dict[str, object] = (
                {"data_file_id": self.rng.randint(1, 10**6), "attempt": self.rng.randint(1, 3)}
                if index % 5 == 0
                else {}
            )
            exc = raise_error(row) if row is not None else None
            as_json = self.rng.random() < 0.25
            made.append(self.format(msg, args, exc=exc, extra=extra, as_json=as_json))
        return made


# -- Lines with sensitive values ---------------------------------------------------------

# Each maker returns (message, args, exception message or None, extra, values).
_Made = tuple[str, tuple[object, ...], str | None, dict[str, object], list[tuple[str, str]]]


def _makers(v: _Values) -> list[Callable[[], _Made]]:
    def receipt() -> _Made:
        email = v.email()
        return "sent receipt to %s for order %d", (email, 48291), None, {}, [("email", email)]

    def ssn_message() -> _Made:
        ssn = v.ssn()
        return f"verified applicant {ssn} against registry", (), None, {}, [("ssn", ssn)]

    def ssn_labelled() -> _Made:
        ssn = v.ssn_labelled()
        label = v.rng.choice(["ssn=%s", "SSN: %s", "tax id %s", "social security number %s"])
        return f"applicant row 17: {label}", (ssn,), None, {}, [("ssn", ssn)]

    def phone_message() -> _Made:
        phone = v.phone()
        return "calling %s about ticket T-%d", (phone, 8812), None, {}, [("phone", phone)]

    def phone_labelled() -> _Made:
        phone = v.phone_labelled()
        label = v.rng.choice(["phone=%s", "Phone: %s", "mobile %s", "tel: %s", "fax %s"])
        return f"contact updated, {label}", (phone,), None, {}, [("phone", phone)]

    def card_failure() -> _Made:
        card = v.card()
        message = f"charge failed for card {card}: declined"
        return "payment step failed", (), message, {}, [("card", card)]

    def args_repr() -> _Made:
        email, phone, ssn = v.email(), v.phone_labelled(), v.ssn_labelled()
        contact = {"email": email, "phone": phone, "ssn": ssn, "city": "Springfield"}
        values = [("email", email), ("phone", phone), ("ssn", ssn)]
        return "parse(data_file_id=%d, contact=%r)", (1204, contact), None, {}, values

    def aws_credentials() -> _Made:
        key, secret = v.aws_key_id(), v.aws_secret()
        message = "using credentials %s / aws_secret_access_key=%s"
        return message, (key, secret), None, {}, [("aws_key", key), ("aws_key", secret)]

    def aws_json_extra() -> _Made:
        key, secret = v.aws_key_id(), v.aws_secret()
        extra: dict[str, object] = {"credentials": {"AccessKeyId": key, "SecretAccessKey": secret}}
        return "assumed role", (), None, extra, [("aws_key", key), ("aws_key", secret)]

    def headers() -> _Made:
        if v.rng.random() < 0.5:
            credential, header = v.token(), "Bearer {}"
        else:
            credential, header = v.basic(), "Basic {}"
        sent = {"Authorization": header.format(credential), "Accept": "application/json"}
        return "request headers: %s", (sent,), None, {}, [("auth_header", credential)]

    def jwt_message() -> _Made:
        token = v.jwt()
        return "session token %s expired", (token,), None, {}, [("jwt", token)]

    def url() -> _Made:
        url, password = v.url_with_password()
        return "connecting to %s", (url,), None, {}, [("url_password", password)]

    def exception_lines() -> _Made:
        email, card, ssn = v.email(), v.card(), v.ssn()
        # Values at the start of lines, right after a newline ("\n" in JSON).
        message = f"rows rejected:\n{email}\n{card}\n{ssn}"
        values = [("email", email), ("card", card), ("ssn", ssn)]
        return "import failed", (), message, {}, values

    def extra_values() -> _Made:
        email, phone = v.email(), v.phone()
        extra: dict[str, object] = {"customer": {"email": email, "phone": phone}, "rows": 12}
        return "customer synced", (), None, extra, [("email", email), ("phone", phone)]

    def registered_secret() -> _Made:
        secret = v.rng.choice(REGISTERED_SECRETS)
        return "retrying login with %s", (secret,), None, {}, [("broker_password", secret)]

    return [
        receipt,
        ssn_message,
        ssn_labelled,
        phone_message,
        phone_labelled,
        card_failure,
        args_repr,
        aws_credentials,
        aws_json_extra,
        headers,
        jwt_message,
        url,
        exception_lines,
        extra_values,
        registered_secret,
    ]


# Values a test registers with register_secret(..., "broker_password") before redacting.
REGISTERED_SECRETS: tuple[str, ...] = ("Zq8#unrt-Plw2x", "kd93.Lmm_0qpXz7", "w!ntER-s0lst1ce")


def sensitive_lines(count: int = 2000, seed: int = SEED) -> list[SensitiveLine]:
    """``count`` lines, a third of them JSON, each holding one or more sensitive values."""
    rng = random.Random(seed)
    values = _Values(rng)
    return LineFormatter(rng).lines_of(_makers(values), count, raised)


# -- Clean lines ------------------------------------------------------------------------


def _clean_makers(rng: random.Random) -> list[Callable[[], tuple[str, tuple[object, ...]]]]:
    def digits(count: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(count))

    def hexdigits(count: int) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(count))

    def task_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def non_luhn(prefix: str, length: int) -> str:
        valid = luhn_complete(prefix + digits(length - len(prefix) - 1))
        return valid[:-1] + str((int(valid[-1]) + rng.randint(1, 9)) % 10)

    def invalid_ssn() -> str:
        return rng.choice(
            [
                f"000-{rng.randint(1, 99):02d}-{digits(4)}",
                f"666-{rng.randint(1, 99):02d}-{digits(4)}",
                f"9{digits(2)}-{rng.randint(1, 99):02d}-{digits(4)}",
                f"{rng.randint(1, 899):03d}-00-{digits(4)}",
                f"{rng.randint(1, 899):03d}-{rng.randint(1, 99):02d}-0000",
            ]
        )

    def when() -> str:
        return random_stamp(rng, "%Y-%m-%d", "%d/%m/%Y %H:%M", "%Y%m%dT%H%M%SZ")

    def amount() -> str:
        value = rng.randint(0, 99_999_999) + rng.randint(0, 99) / 100
        return rng.choice([f"{value:,.2f}", f"${value:.2f}", f"EUR {value:,.2f}", f"{value:.2f}"])

    return [
        lambda: (
            "parsed %d rows from %s in %.2fs",
            (rng.randint(0, 99999), f"data_{digits(6)}.csv", rng.random() * 30),
        ),
        lambda: (
            "Task datafiles.tasks.parse[%s] succeeded in %.3fs: None",
            (task_id(), rng.random() * 9),
        ),
        lambda: (
            "reparse of data file %d requested (reparse_id=%s)",
            (rng.randint(1, 10**6), task_id()),
        ),
        lambda: ("checksum sha1=%s sha256=%s", (hexdigits(40), hexdigits(64))),
        lambda: ("stored object etag %s md5 %s", (hexdigits(32), hexdigits(32))),
        lambda: ("order %s total %s", (digits(10), amount())),
        lambda: (
            "invoice INV-%d-%s for record R%05d",
            (rng.randint(2020, 2026), digits(6), rng.randint(0, 99999)),
        ),
        lambda: ("period %s to %s", (when(), when())),
        lambda: ("scheduled at %s, next run %s", (when(), when())),
        lambda: (
            "wrote %d bytes (%s MiB) to %s",
            (
                rng.randint(10**6, 10**9),
                f"{rng.random() * 900:.1f}",
                f"/srv/data/{digits(4)}/{digits(2)}/part-{digits(5)}.parquet",
            ),
        ),
        lambda: (
            "epoch %d ms %d us %d",
            (
                rng.randint(1_600_000_000, 1_800_000_000),
                rng.randint(1_600_000_000_000, 1_800_000_000_000),
                rng.randint(1_600_000_000_000_000, 1_800_000_000_000_000),
            ),
        ),
        lambda: ("rejected value %s: not a valid SSN", (invalid_ssn(),)),
        lambda: (
            "reference %s failed the check digit",
            (non_luhn(rng.choice(["4", "51", "37", "6011"]), 16),),
        ),
        lambda: ("external id %s imported", (str(rng.randint(10**11, 10**19 - 1)),)),
        lambda: ("batch %s of %s: %d%% done", (digits(3), digits(3), rng.randint(0, 100))),
        lambda: (
            "client %s:%d connected from %s",
            (
                f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                rng.randint(1024, 65535),
                f"worker-{rng.randint(1, 40)}.internal",
            ),
        ),
        lambda: (
            "GET https://api.example.com:8443/v1/items/%d?page=%d returned %d",
            (rng.randint(1, 10**6), rng.randint(1, 99), rng.choice([200, 404, 500])),
        ),
        lambda: (
            "broker redis://localhost:6379/%d, results s3://bucket/%s",
            (rng.randint(0, 15), f"{digits(4)}/{digits(2)}/{task_id()}.json"),
        ),
        lambda: (
            "celery@worker-%d ready; %d tasks prefetched",
            (rng.randint(1, 40), rng.randint(0, 500)),
        ),
        lambda: (
            "version %d.%d.%d of parser, schema %s",
            (rng.randint(0, 9), rng.randint(0, 30), rng.randint(0, 99), f"v{digits(8)}"),
        ),
        lambda: ("object at 0x%x released, refcount %d", (rng.getrandbits(48), rng.randint(0, 9))),
        lambda: (
            "phone number missing for customer %d; ssn not provided",
            (rng.randint(1, 10**6),),
        ),
        lambda: (
            "authorization failed for user %d (token expired at %s)",
            (rng.randint(1, 10**6), when()),
        ),
        lambda: (
            "rotating secret for tenant %d, previous version %s",
            (rng.randint(1, 999), hexdigits(40)),
        ),
        lambda: (
            "row counts: %s",
            (" ".join(str(rng.randint(100, 9999)) for _ in range(rng.randint(3, 8))),),
        ),
        lambda: (
            "ticket %s-%s opened, queue position %d",
            (rng.choice(["OPS", "DATA", "FIN"]), digits(5), rng.randint(1, 999)),
        ),
        lambda: (
            "lat %.6f lon %.6f accuracy %.1fm",
            (rng.uniform(-90, 90), rng.uniform(-180, 180), rng.uniform(1, 99)),
        ),
        lambda: (
            "ISBN 978-%d-%s-%s-%d catalogued",
            (rng.randint(0, 9), digits(3), digits(5), rng.randint(0, 9)),
        ),
        lambda: (
            "duration %d.%s s, cpu %s ms, rss %d kB",
            (rng.randint(0, 999), digits(6), digits(7), rng.randint(10**4, 10**7)),
        ),
        lambda: ("session %s renewed for account %s", (task_id(), f"ACC-{digits(8)}")),
    ]


def clean_lines(count: int = 5000, seed: int = SEED) -> list[str]:
    """``count`` lines with nothing to redact, a quarter of them JSON, some with tracebacks.

    They are full of what a careless pattern would take for a sensitive value: dates
    and timestamps in several formats, UUIDs, hashes, amounts, record ids, order
    numbers, byte counts, epoch times, invalid SSNs, numbers failing the Luhn check,
    IP addresses, URLs without passwords, and words such as "secret" or "phone".
    Long numeric ids are drawn at random, so a few may pass as card numbers.
    """
    rng = random.Random(seed)
    lines = LineFormatter(rng)
    return lines.clean_lines_of(_clean_makers(rng), count, raised)
