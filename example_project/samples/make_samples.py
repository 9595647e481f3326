"""Write the sample data files of this folder again, byte for byte.

The samples are synthetic: sites, dates, units and amounts come from a seeded
random generator, so nothing in them describes anyone. Run it from anywhere:

    python example_project/samples/make_samples.py
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "record_id,reported_on,site,units,amount"

# A broken value for some records of the file with record errors, by record number.
Damage = Callable[[list[str]], list[str]]
_RECORD_ERRORS: dict[int, Damage] = {
    7: lambda f: [*f[:4], "-12.50"],
    15: lambda f: [f[0], "2024-07-02", *f[2:]],
    23: lambda f: [*f[:3], "twelve", f[4]],
    31: lambda f: f[:4],
    44: lambda f: [f[0], "2024-02-30", *f[2:]],
}
_CORRUPT_RECORD_ERRORS: dict[int, Damage] = {
    12: lambda f: [*f[:3], "", f[4]],
    29: lambda f: [*f[:4], "1,250.00"],
}


def _records(seed: int, count: int, year: int, quarter: int, section: str) -> list[list[str]]:
    rng = random.Random(seed)
    first = date(year, 3 * quarter - 2, 1)
    days = (date(year + quarter // 4, 3 * quarter % 12 + 1, 1) - first).days
    rows = []
    for number in range(1, count + 1):
        units = rng.randint(1, 40)
        price = rng.randint(150, 4000)
        rows.append(
            [
                f"R{number:05d}",
                (first + timedelta(days=rng.randrange(days))).isoformat(),
                f"{section}-{rng.randint(1, 12):02d}",
                str(units),
                f"{units * price / 100:.2f}",
            ]
        )
    return rows


def _write(name: str, rows: list[list[str]], *, trailer: bool = True, tail: str = "") -> None:
    lines = [HEADER, *(",".join(row) for row in rows)]
    if trailer:
        lines.append(f"TRAILER,{len(rows)}")
    text = "\n".join(lines) + "\n" + tail
    (HERE / name).write_text(text, encoding="utf-8", newline="\n")


def _damaged(rows: list[list[str]], damage: dict[int, Damage]) -> list[list[str]]:
    return [damage[n](row) if n in damage else row for n, row in enumerate(rows, start=1)]


def main() -> None:
    """Two clean files, one with record errors, one cut short in the middle of a record."""
    _write("2024-Q1-north.csv", _records(101, 60, 2024, 1, "north"))
    _write("2024-Q1-south.csv", _records(102, 48, 2024, 1, "south"))
    _write("2024-Q2-north.csv", _damaged(_records(103, 56, 2024, 2, "north"), _RECORD_ERRORS))
    _write(
        "2024-Q2-south.csv",
        _damaged(_records(104, 45, 2024, 2, "south"), _CORRUPT_RECORD_ERRORS),
        trailer=False,
        tail="R00046,2024-05-1",
    )


if __name__ == "__main__":
    main()
