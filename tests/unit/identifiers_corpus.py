"""Synthetic log lines shaped like a parser of fixed-width records about families.

For the ``identifiers`` built-in: :func:`identifier_lines` gives lines holding SSNs,
dates of birth, case numbers and whole raw record lines in the shapes such a parser
really logs them (database errors, hash-input debug lines, reprs of dicts and lists,
``str()`` of error objects dumping their ``__dict__``, validator messages embedding the
record, digit-substituted SSNs inside records, plural and far-keyword forms), each
with the values it holds. :func:`operational_lines` gives clean operational lines of
the same service and of Celery itself (timestamps, durations, counts, short ids, file
names, task ids, sha256 values, report months), which must come through unchanged.

Every value is invented here from a fixed seed; nothing comes from a real file or
person. Lines go through the package's own formatters, text and JSON, with real
exceptions and tracebacks, as in a worker.
"""

from __future__ import annotations

import hashlib
import random
import string
import sys
import uuid
from collections.abc import Callable
from datetime import date, timedelta

from tests.unit.redaction_corpus import (
    SEED,
    ExcInfo,
    LineFormatter,
    SensitiveLine,
    random_moment,
    random_stamp,
)

__all__ = [
    "encrypt_ssn",
    "identifier_lines",
    "operational_lines",
    "record_line",
]

# An invented letter-for-digit swap of the kind files use to "encrypt" SSNs.
_SWAP = str.maketrans("0123456789", "Q@9ZP0#YBW")
_SCHEMAS = ("T1", "T2", "T3", "T4", "T5", "T6", "T7")


def encrypt_ssn(ssn: str) -> str:
    """``ssn`` with its digits swapped for letters and symbols, as an "encrypted" field."""
    return ssn.translate(_SWAP)


class _People:
    """Invented identifiers: SSNs (any nine digits), dates of birth, case numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def digits(self, count: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(count))

    def ssn(self) -> str:
        # Any nine digits: test and substituted SSNs need not be in an issuable range.
        return str(self.rng.randint(1, 9)) + self.digits(8)

    def dob(self) -> date:
        return date(1940, 1, 1) + timedelta(days=self.rng.randint(0, 80 * 365))

    def dob_text(self) -> str:
        born = self.dob()
        return self.rng.choice(
            [born.strftime("%Y%m%d"), born.strftime("%Y-%m-%d"), born.strftime("%m/%d/%Y")]
        )

    def case_number(self) -> str:
        kind = self.rng.random()
        if kind < 0.6:
            return str(self.rng.randint(1, 9)) + self.digits(self.rng.randint(8, 10))
        letters = "".join(self.rng.choice(string.ascii_uppercase) for _ in range(2))
        return letters + self.digits(self.rng.randint(7, 9))

    def report_month(self) -> str:
        return f"{self.rng.randint(2019, 2024)}{self.rng.randint(1, 12):02d}"


def record_line(people: _People) -> tuple[str, list[str]]:
    """A raw fixed-width record of 100 to 160 characters, and the values inside it.

    Schema code, report month, case number, then a digit run holding a date of birth
    and an SSN (or its digit-substituted form), then fields of digits, codes and, now
    and then, blanks.
    """
    rng = people.rng
    case = people.digits(11)
    born = people.dob().strftime("%Y%m%d")
    ssn = people.ssn()
    shown_ssn = encrypt_ssn(ssn) if rng.random() < 0.4 else ssn
    head = f"{rng.choice(_SCHEMAS)}{people.report_month()}{case}{rng.randint(1, 3)}{born}"
    line = head + shown_ssn + people.digits(rng.randint(4, 12))
    target = rng.randint(100, 160)
    while len(line) < target:
        if rng.random() < 0.15:
            line += " " * rng.randint(1, 6)
        line += rng.choice([people.digits(rng.randint(2, 12)), rng.choice("YNAB") + "0"])
    line = line[:target].rstrip() + people.digits(2)
    return line, [line, case, born, shown_ssn, ssn]


class ParseError(Exception):
    """An error object whose ``str()`` dumps its ``__dict__``, as some parsers' do."""

    def __init__(self, **fields: object) -> None:
        super().__init__()
        self.__dict__.update(fields)

    def __str__(self) -> str:
        return str(self.__dict__)


class IntegrityError(Exception):
    """Stands for a database driver's constraint violation."""


def _raised(error: Exception) -> ExcInfo:
    """``error`` raised and caught, with its traceback."""
    try:
        raise error
    except Exception:  # noqa: BLE001 - re-raised as exc_info for the formatter
        kind, value, traceback = sys.exc_info()
        assert kind is not None and value is not None
        return kind, value, traceback


_Made = tuple[str, tuple[object, ...], Exception | None, dict[str, object], list[str]]


def _identifier_makers(p: _People) -> list[Callable[[], _Made]]:
    rng = p.rng

    def failing_row() -> _Made:
        case, born, ssn = p.case_number(), p.dob().strftime("%Y%m%d"), p.ssn()
        detail = (
            'null value in column "FAMILY_AFFILIATION" violates not-null constraint\n'
            f"DETAIL:  Failing row contains ({rng.randint(1, 99999)}, {case}, 1, 2, "
            f"{born}, {ssn}, {p.report_month()}, null, null)."
        )
        return "could not save records", (), IntegrityError(detail), {}, [case, born, ssn]

    def duplicate_key() -> _Made:
        case, ssn = p.case_number(), p.ssn()
        detail = (
            "duplicate key value violates unique constraint\n"
            f'DETAIL:  Key ("CASE_NUMBER", "RPT_MONTH_YEAR", "SSN")=({case}, '
            f"{p.report_month()}, {ssn}) already exists."
        )
        return "bulk insert failed", (), IntegrityError(detail), {}, [case, ssn]

    def hash_inputs() -> _Made:
        case, born, ssn = p.digits(11), p.dob().strftime("%Y%m%d"), p.ssn()
        message = "Partial Hash Field Values: %s %s %s %d %s %s"
        args = (rng.choice(_SCHEMAS), p.report_month(), case, rng.randint(1, 3), born, ssn)
        return message, args, None, {}, [case, born, ssn]

    def dict_repr() -> _Made:
        born, ssn, case = p.dob().strftime("%Y%m%d"), p.ssn(), p.case_number()
        values = {"RPT_MONTH_YEAR": int(p.report_month()), "DOB": born, "SSN": ssn}
        values["CASE_NUMBER"] = (
            case if rng.random() < 0.5 else int(case) if case.isdigit() else case
        )
        return "record values: %s", (values,), None, {}, [born, ssn, case]

    def tuple_list() -> _Made:
        cases = [p.digits(11) for _ in range(rng.randint(1, 4))]
        month = int(p.report_month())
        info = [(rng.choice(_SCHEMAS), case, month) for case in cases]
        return "Record(s) info: %s", (info,), None, {}, cases

    def error_dict() -> _Made:
        line, inside = record_line(p)
        error = ParseError(
            schema=line[:2],
            record=line,
            row_number=rng.randint(1, 5000),
            field="SSN",
            value=inside[4],
            error_message="SSN is not valid",
        )
        return "row failed validation: %s", (error,), error, {}, inside

    def validator_record() -> _Made:
        line, inside = record_line(p)
        message = rng.choice(
            [
                "Record length is %d characters but must be 156: %s",
                "%d: record does not match the schema: '%s'",
                "Value at position %d is not valid for record %r",
            ]
        )
        return message, (len(line), line), None, {}, inside

    def record_in_extra() -> _Made:
        line, inside = record_line(p)
        extra: dict[str, object] = {"line_number": rng.randint(1, 9000), "raw": line}
        return "skipping record", (), None, extra, inside

    def record_in_exception() -> _Made:
        line, inside = record_line(p)
        error = ValueError(f"cannot parse line {rng.randint(1, 9000)}:\n{line}")
        return "parse failed", (), error, {}, inside

    def plural() -> _Made:
        ssns = [p.ssn() for _ in range(rng.randint(2, 4))]
        return "SSN(s): %s", (", ".join(ssns),), None, {}, ssns

    def plural_repr() -> _Made:
        ssns = [p.ssn() for _ in range(rng.randint(2, 4))]
        return "duplicates %s", ({"ssns": ssns, "count": len(ssns)},), None, {}, ssns

    def far_keyword() -> _Made:
        ssn = p.ssn()
        message = rng.choice(
            [
                "SSN check failed for the second adult of household %d, value given was %s",
                "ssn of member %d does not match the earlier record from this file: %s",
            ]
        )
        return message, (rng.randint(1, 20), ssn), None, {}, [ssn]

    def separated_ssn() -> _Made:
        ssn = p.ssn()
        shown = rng.choice([f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}", f"{ssn[:3]} {ssn[3:5]} {ssn[5:]}"])
        return "member %d: %s", (rng.randint(1, 20), shown), None, {}, [shown]

    def dob_forms() -> _Made:
        born = p.dob_text()
        message = rng.choice(
            ["DOB %s is in the future", "date of birth: %s", "child born %s is over 19"]
        )
        return message, (born,), None, {}, [born]

    def case_numbers() -> _Made:
        case = p.case_number()
        message = rng.choice(
            ["case %s closed", "CASE_NUMBER=%s has no T1 record", "account %s not found"]
        )
        return message, (case,), None, {}, [case]

    def encrypted_alone() -> _Made:
        ssn = encrypt_ssn(p.ssn())
        return "encrypted SSN %s could not be decoded", (ssn,), None, {}, [ssn]

    return [
        failing_row,
        duplicate_key,
        hash_inputs,
        dict_repr,
        tuple_list,
        error_dict,
        validator_record,
        record_in_extra,
        record_in_exception,
        plural,
        plural_repr,
        far_keyword,
        separated_ssn,
        dob_forms,
        case_numbers,
        encrypted_alone,
    ]


def identifier_lines(count: int = 2000, seed: int = SEED) -> list[SensitiveLine]:
    """``count`` lines, a third of them JSON, each holding identifiers of people.

    Each line's values are every identifier it holds as written (for a record line:
    the whole line, its case number, date of birth and SSN), named ``identifiers``.
    """
    rng = random.Random(seed)
    people = _People(rng)
    lines = LineFormatter(rng)
    return lines.lines_of(_identifier_makers(people), count, _raised, kind="identifiers")


# -- Clean operational lines -------------------------------------------------------------


def _operational_makers(rng: random.Random) -> list[Callable[[], tuple[str, tuple[object, ...]]]]:
    def task_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def sha256() -> str:
        return hashlib.sha256(rng.randbytes(16)).hexdigest()

    def month() -> str:
        return f"{rng.randint(2019, 2024)}{rng.randint(1, 12):02d}"

    def timestamp() -> str:
        return random_stamp(rng, "%Y%m%dT%H%M%SZ", "%m/%d/%Y %H:%M:%S")

    def file_name() -> str:
        return rng.choice(
            [
                f"ADS.E2J.FTP{rng.randint(1, 4)}.TS{rng.randint(1, 99):02d}",
                f"tanf_section{rng.randint(1, 4)}_{rng.randint(2019, 2024)}"
                f"Q{rng.randint(1, 4)}.txt",
                f"data_file_{rng.randint(1, 999999)}.txt",
                f"/tmp/tmp{''.join(rng.choice(string.ascii_lowercase) for _ in range(8))}.log",
            ]
        )

    def key() -> str:
        when = random_moment(rng)
        return f"parselog/proj.parse/{when:%Y/%m/%d}/{task_id()}-{rng.randint(1, 3)}.log.gz"

    def short() -> int:
        """An id under eight digits."""
        return rng.randint(1, 9_999_999)

    return [
        lambda: ("Task proj.parse[%s] received", (task_id(),)),
        lambda: (
            "Task proj.parse[%s] succeeded in %ss: None",
            (task_id(), repr(rng.random() * rng.choice([0.01, 1, 30]))),
        ),
        lambda: ("Task proj.parse[%s] retry: Retry in %ds", (task_id(), rng.randint(1, 600))),
        lambda: ("celery@worker-%d ready.", (rng.randint(1, 9),)),
        lambda: ("Connected to redis://localhost:6379/%d", (rng.randint(0, 15),)),
        lambda: ("mingle: searching for neighbors", ()),
        lambda: ("Scaling up %d processes.", (rng.randint(1, 8),)),
        lambda: ("Received task: proj.parse[%s]  ETA:[%s]", (task_id(), timestamp())),
        lambda: ("parsing %s for data file %d", (file_name(), short())),
        lambda: (
            "parsed %d records of %s in %.3fs",
            (rng.randint(0, 250000), month(), rng.random() * 90),
        ),
        lambda: (
            "report month %s, RPT_MONTH_YEAR=%s, quarter %dQ%d",
            (month(), month(), rng.randint(2019, 2024), rng.randint(1, 4)),
        ),
        lambda: ("file checksum sha256=%s", (sha256(),)),
        lambda: ("stored log %s (%d bytes)", (key(), rng.randint(100, 99_999_999))),
        lambda: ("reparse %d of data file %d queued as %s", (short(), short(), task_id())),
        lambda: ("scheduled at %s, previous run %s", (timestamp(), timestamp())),
        lambda: (
            "took %d ms, cpu %.1f%%, rss %d kB",
            (rng.randint(0, 99999), rng.random() * 100, rng.randint(10**4, 10**7)),
        ),
        lambda: (
            "%d of %d rows rejected in section %d",
            (rng.randint(0, 999), rng.randint(1000, 999999), rng.randint(1, 4)),
        ),
        lambda: (
            "stt %d region %d: %d families, %d children",
            (rng.randint(1, 99), rng.randint(1, 10), short(), short()),
        ),
        lambda: ("datafile id=%d version=%d user_id=%d", (short(), rng.randint(1, 40), short())),
        lambda: (
            "GET /v1/data_files/%d/download/ returned %d",
            (short(), rng.choice([200, 302, 404])),
        ),
    ]


def operational_lines(count: int = 5000, seed: int = SEED) -> list[str]:
    """``count`` clean lines of the service and of Celery, a quarter of them JSON.

    Nothing in them is about a person; they hold what the ``identifiers`` rules must
    leave alone: timestamps in several forms, durations (Celery's full-precision
    ``succeeded in 0.0045628...s``), counts, ids under eight digits, file names and
    stored keys, task ids, sha256 values and report months. A line in seventeen
    carries a traceback.
    """
    rng = random.Random(seed + 1)
    lines = LineFormatter(rng)
    return lines.clean_lines_of(
        _operational_makers(rng), count, lambda row: _raised(ValueError(row))
    )
