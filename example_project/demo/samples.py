"""Turning the sample files into uploaded data files, as a person would through the admin."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.files import File

from datafiles.models import DataFile
from demo.errors import DemoError

__all__ = ["SAMPLE_NAME", "upload_samples"]

# The year, quarter and section of a sample come from its name: 2024-Q1-north.csv.
SAMPLE_NAME = re.compile(r"^(?P<year>\d{4})-Q(?P<quarter>[1-4])-(?P<section>[A-Za-z0-9_-]+)\.csv$")


def upload_samples(folder: Path) -> list[DataFile]:
    """Store every ``YEAR-Qn-SECTION.csv`` of ``folder`` as a new :class:`DataFile`, by name."""
    paths = sorted(folder.glob("*.csv"))
    if not paths:
        raise DemoError(f"no sample files (named like 2024-Q1-north.csv) in {folder}")
    uploaded = []
    for path in paths:
        match = SAMPLE_NAME.match(path.name)
        if match is None:
            raise DemoError(f"{path} is not named like 2024-Q1-north.csv (YEAR-Qn-SECTION.csv)")
        data_file = DataFile(
            year=int(match["year"]), quarter=int(match["quarter"]), section=match["section"]
        )
        with path.open("rb") as stream:
            data_file.file.save(path.name, File(stream), save=True)
        uploaded.append(data_file)
    return uploaded
