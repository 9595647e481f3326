"""The benchmarks run end to end at their smallest size and report every row.

Only completion and the shape of the report are checked, never a figure: timings on
a shared machine prove nothing at this size, and targets are judged on full runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.report import CATALOG, PARTS, ROW_IDS
from benchmarks.sizes import MODES
from tests.child import run_python

pytestmark = pytest.mark.e2e


def test_smoke_run_writes_json_and_markdown_with_every_row(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; the benchmarks need it")
    completed = run_python(
        "-m", "benchmarks", "run", "--smoke", "--out", str(tmp_path), timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-5000:]

    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["mode"] == "smoke"
    assert {"cores", "cpu_model", "python"} <= set(report["machine"])
    assert all(report["parts"][part]["status"] == "ok" for part in PARTS), report["parts"]
    rows = report["rows"]
    assert [row["id"] for row in rows] == list(ROW_IDS)
    for row in rows:
        assert {"title", "target", "measured", "met", "notes"} <= set(row)
        assert row["measured"] not in ("failed", "not run"), row
    b1 = report["parts"]["b1"]["raw"]
    assert all(len(times) == MODES["smoke"].b1_repetitions for times in b1["cpu_seconds"].values())

    markdown = (tmp_path / "latest.md").read_text()
    assert "| Row | Benchmark | Target | Measured | Met? | Notes |" in markdown
    assert "- Machine: " in markdown
    for spec in CATALOG:
        assert f"| {spec.id} | " in markdown
