"""The README's promises that can be checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

import celery_parselog.checks
from celery_parselog.conf import settings_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_settings_table_is_the_one_made_from_the_settings_declarations() -> None:
    """The README's settings table is exactly the one generated from conf.SPECS."""
    block = re.search(
        r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", README, re.S
    )
    assert block is not None, "the README lost its settings table markers"
    assert block.group(1) == settings_table()


def test_every_check_id_in_the_code_is_documented_and_no_other() -> None:
    """The check ids listed in the README are the ones the checks module can emit."""
    source = Path(celery_parselog.checks.__file__).read_text()
    documented = set(re.findall(r"`(celery_parselog\.[EW]\d{3})`", README))
    emitted = set(re.findall(r'"(celery_parselog\.[EW]\d{3})"', source))
    conf_source = Path(celery_parselog.checks.__file__).with_name("conf.py").read_text()
    emitted |= set(re.findall(r'"(celery_parselog\.[EW]\d{3})"', conf_source))
    assert documented == emitted


def test_reliability_table_is_the_one_the_end_to_end_tests_wrote() -> None:
    """The README's reliability table is docs/reliability.md, which CI regenerates and compares."""
    block = re.search(
        r"<!-- reliability-table:start -->\n(.*?)<!-- reliability-table:end -->", README, re.S
    )
    assert block is not None, "the README lost its reliability table markers"
    written = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    assert block.group(1) == written
    assert all(row.endswith("| 0 |") for row in written.splitlines()[2:])
