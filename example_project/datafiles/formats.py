"""The line format of a quarterly data file, and what makes a record or a whole file unusable.

A data file is UTF-8 CSV: a header line, one record per line, then a trailer that
counts the records::

    record_id,reported_on,site,units,amount
    R00001,2024-01-03,north-04,12,340.50
    TRAILER,1

The trailer is what tells a file cut short in transfer from a file that is merely
small, so a missing or wrong trailer makes the whole file corrupt, while a bad
record only costs that record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

__all__ = [
    "HEADER",
    "TRAILER",
    "CorruptFileError",
    "Record",
    "RecordError",
    "parse_record",
    "quarter_bounds",
]

HEADER = ("record_id", "reported_on", "site", "units", "amount")
TRAILER = "TRAILER"
_RECORD_ID = re.compile(r"^R\d{5}$")
_AMOUNT = re.compile(r"^\d+\.\d{2}$")


class CorruptFileError(Exception):
    """The file as a whole cannot be trusted: not text, wrong header, or cut short."""


class RecordError(ValueError):
    """One record cannot be accepted; the rest of the file may still be fine."""


@dataclass(frozen=True)
class Record:
    """One accepted record."""

    record_id: str
    reported_on: date
    site: str
    units: int
    amount: Decimal


def quarter_bounds(year: int, quarter: int) -> tuple[date, date]:
    """The first day of the quarter and the first day after it."""
    first = date(year, 3 * quarter - 2, 1)
    after = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return first, after


def parse_record(fields: list[str], *, first_day: date, day_after: date) -> Record:
    """Check one record's fields and build it; raise :class:`RecordError` saying what is wrong."""
    if len(fields) != len(HEADER):
        raise RecordError(f"expected {len(HEADER)} fields, found {len(fields)}")
    record_id, reported_on, site, units, amount = (field.strip() for field in fields)
    if not _RECORD_ID.match(record_id):
        raise RecordError(f"record id {record_id!r} is not R followed by five digits")
    try:
        day = date.fromisoformat(reported_on)
    except ValueError:
        raise RecordError(f"{record_id}: {reported_on!r} is not a date") from None
    if not first_day <= day < day_after:
        raise RecordError(f"{record_id}: {reported_on} is outside the file's quarter")
    if not units.isdigit():
        raise RecordError(f"{record_id}: units {units!r} is not a whole number")
    if not _AMOUNT.match(amount):
        raise RecordError(f"{record_id}: amount {amount!r} is not a positive amount like 12.50")
    return Record(record_id, day, site, int(units), Decimal(amount))
