"""Reading a whole data file: records in batches, one warning per bad record, progress per batch.

Its logger, ``datafiles.parsers``, does not propagate: the deployment sends it to
handlers of its own in ``LOGGING``, as operations teams like parser noise kept apart.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from datafiles.formats import (
    HEADER,
    TRAILER,
    CorruptFileError,
    RecordError,
    parse_record,
    quarter_bounds,
)

__all__ = ["BATCH_SIZE", "ParseSummary", "parse_data_file"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 20


@dataclass
class ParseSummary:
    """What one parse of one file found."""

    records: int = 0
    accepted: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _decode(content: bytes, name: str) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorruptFileError(f"{name} is not UTF-8 text") from error


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Numbered CSV rows, blank lines left out."""
    for number, fields in enumerate(csv.reader(text.splitlines()), start=1):
        if fields:
            yield number, fields


def _check_trailer(fields: list[str], line: int, summary: ParseSummary, name: str) -> None:
    declared = fields[1] if len(fields) == 2 else ""
    if declared != str(summary.records):
        raise CorruptFileError(
            f"{name} line {line}: the trailer declares {declared or 'nothing'} records, "
            f"but {summary.records} were read"
        )


def parse_data_file(content: bytes, *, name: str, year: int, quarter: int) -> ParseSummary:
    """Parse one file's content. Raises :class:`CorruptFileError` when the file cannot be trusted.

    Records are checked one by one and a bad one is skipped with a warning, so one
    typo does not cost a whole quarter's file.
    """
    first_day, day_after = quarter_bounds(year, quarter)
    rows = _rows(_decode(content, name))
    header = next(rows, (0, []))[1]
    if tuple(field.strip() for field in header) != HEADER:
        raise CorruptFileError(f"{name}: unexpected header {','.join(header)!r}")

    summary = ParseSummary()
    line = 1
    for line, fields in rows:
        if fields[0] == TRAILER:
            _check_trailer(fields, line, summary, name)
            break
        summary.records += 1
        try:
            parse_record(fields, first_day=first_day, day_after=day_after)
        except RecordError as error:
            summary.rejected += 1
            logger.warning("%s line %d: %s; record skipped", name, line, error)
        else:
            summary.accepted += 1
        if summary.records % BATCH_SIZE == 0:
            logger.info(
                "%s: %d records read, %d rejected so far", name, summary.records, summary.rejected
            )
    else:
        raise CorruptFileError(
            f"{name} ends at line {line} without a {TRAILER} line; the file was cut short"
        )
    logger.info(
        "%s: done, %d records, %d accepted, %d rejected",
        name,
        summary.records,
        summary.accepted,
        summary.rejected,
    )
    return summary
