"""The rows every run reports, and how they are written as JSON and as a Markdown table.

Every row is declared here once, with its target, so a part that fails or is not yet
measurable still shows up (as failed, or "not available yet") instead of silently
missing from the table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.machine import code_line, machine_line

__all__ = ["CATALOG", "PARTS", "ROW_IDS", "Outcome", "RowSpec", "write_report"]

INFO = "— (informational)"
NOT_AVAILABLE = "not available yet"


@dataclass(frozen=True)
class RowSpec:
    id: str
    part: str
    title: str
    target: str


@dataclass(frozen=True)
class Outcome:
    """What one row measured: a short text for the table, the number behind it, and
    whether the target was met (``None`` for informational rows and unavailable ones)."""

    id: str
    measured: str
    met: bool | None
    value: float | None = None
    notes: str = ""


PARTS: dict[str, str] = {
    "b1": "B1 cost per record (capture time / floor time, process CPU, median of repetitions)",
    "b2": "B2 cost per task (real solo worker, Redis)",
    "b3": "B3 memory and disk (one task logging a lot of text)",
    "b4": "B4 leaks (many captured tasks in one process)",
    "b5": "B5 records of concurrent tasks (real worker, --pool threads --concurrency 8)",
    "b6": "B6 the admin's preview of a gzip bomb (bounded decompression)",
    "b7": "B7 comparing runs within bounds (kinds of message, the whole comparison)",
}

# B2's set-ups: each names its storage and its database (see b2_tasks.SETUPS).
_B2_SETUPS = (
    ("fs_sqlite", "FileSystemStorage, SQLite"),
    ("s3_sqlite", "S3Storage on moto over HTTP, SQLite"),
    ("s3_postgresql", "S3Storage on moto over HTTP, PostgreSQL 15 on loopback"),
)

CATALOG: tuple[RowSpec, ...] = (
    RowSpec("b1.plain", "b1", "Plain text (`COMPRESS = False`), redaction off / floor", "≤ 1.10"),
    RowSpec("b1.gzip", "b1", "Gzip (default), redaction off / floor", "≤ 1.30"),
    RowSpec(
        "b1.json",
        "b1",
        "JSON lines (gzip), redaction off / floor with the same JSON formatter",
        "≤ 1.30",
    ),
    RowSpec(
        "b1.redaction",
        "b1",
        "Gzip with the default redaction set on (the default settings) / floor",
        "≤ 1.50",
    ),
    RowSpec(
        "b1.identifiers",
        "b1",
        "Gzip with the default redaction set and `identifiers` / floor",
        "≤ 1.60",
    ),
    RowSpec(
        "b1.unselected",
        "b1",
        "Task not selected, receivers connected / no package at all",
        "within noise (≤ 1.05)",
    ),
    RowSpec(
        "b1.unselected_busy",
        "b1",
        "Task not selected while another thread's run is captured / no package",
        INFO,
    ),
    RowSpec("b1.noise", "b1", "Floor / floor again (A/A: this run's noise)", INFO),
    RowSpec("b1.baseline_perrun", "b1", "Baseline per-run logger (no upload) / floor", INFO),
    RowSpec("b1.baseline_swap", "b1", "Baseline global handler swap (no upload) / floor", INFO),
    *(
        row
        for setup, label in _B2_SETUPS
        for row in (
            RowSpec(
                f"b2.{setup}.capture",
                "b2",
                f"Added time per task, capture on vs off ({label})",
                "≤ 3 ms" if setup == "fs_sqlite" else INFO,
            ),
            RowSpec(
                f"b2.{setup}.per_run_logger",
                "b2",
                f"Added time per task, baseline per-run logger + upload + row ({label})",
                INFO,
            ),
            RowSpec(
                f"b2.{setup}.handler_swap",
                "b2",
                f"Added time per task, baseline global handler swap + upload + row ({label})",
                INFO,
            ),
            RowSpec(
                f"b2.{setup}.ratio",
                "b2",
                f"Capture's added time / the faster baseline's ({label})",
                "≤ 1.0",
            ),
        )
    ),
    RowSpec("b2.s3_puts", "b2", "S3 PUT requests per captured task (S3, SQLite)", "exactly 1"),
    RowSpec(
        "b2.s3_other",
        "b2",
        "S3 HEAD, GET, LIST or other requests per captured task (S3, SQLite)",
        "0",
    ),
    RowSpec("b2.baseline_requests", "b2", "S3 requests per task, baselines (S3, SQLite)", INFO),
    RowSpec(
        "b3.rss_gzip",
        "b3",
        "RSS growth of the capturing process, gzip (default) with the size cap",
        "≤ 32 MiB",
    ),
    RowSpec(
        "b3.rss_plain",
        "b3",
        "RSS growth of the capturing process, plain text with the size cap",
        "≤ 32 MiB",
    ),
    RowSpec(
        "b3.rss_uncapped",
        "b3",
        "RSS growth of the capturing process, gzip without a cap (`MAX_BYTES = 0`)",
        "≤ 32 MiB",
    ),
    RowSpec(
        "b3.disk",
        "b3",
        "Spool at its largest / text logged, gzip without a cap",
        INFO,
    ),
    RowSpec(
        "b3.max_bytes",
        "b3",
        "`CELERY_PARSELOG_MAX_BYTES`: text stored, and log files in the spool, vs the cap",
        "both ≤ cap",
    ),
    RowSpec("b4.loggers", "b4", "Loggers in `logging.Logger.manager.loggerDict`", "unchanged"),
    RowSpec("b4.handlers", "b4", "Handlers on all loggers (sum)", "unchanged"),
    RowSpec("b4.fds", "b4", "Open file descriptors (`/proc/self/fd`)", "unchanged"),
    RowSpec("b4.threads", "b4", "Threads (Python and OS)", "unchanged"),
    RowSpec("b4.spool", "b4", "Files in the spool folder", "unchanged"),
    RowSpec("b4.rss", "b4", "RSS growth", "≤ 10 MiB"),
    RowSpec("b4.baseline_perrun", "b4", "Baseline per-run logger + upload + row: growth", INFO),
    RowSpec("b4.baseline_swap", "b4", "Baseline global handler swap + upload + row: growth", INFO),
    RowSpec("b5.wrong", "b5", "Lines in the wrong task's log, capture", "0"),
    RowSpec("b5.lost", "b5", "Lines missing from their own task's log, capture", "0"),
    RowSpec("b5.baseline_perrun", "b5", "Baseline per-run logger: wrong / missing lines", INFO),
    RowSpec("b5.baseline_swap", "b5", "Baseline global handler swap: wrong / missing lines", INFO),
    RowSpec(
        "b6.bomb_text",
        "b6",
        "Text decompressed by a page view of a 1 MiB gzip of 1 GiB (full size)",
        "≤ 80 MiB",
    ),
    RowSpec("b6.bomb_time", "b6", "Time of that page view / decompressing the whole bomb", INFO),
    RowSpec(
        "b7.summary",
        "b7",
        "Kinds of message of two parse logs of 1,000,000 lines each (read, one pass each)",
        "< 10 s",
    ),
    RowSpec(
        "b7.compare",
        "b7",
        "Whole comparison of two logs of 100,000 distinct lines each (summary and diff)",
        "< 5 s",
    ),
    RowSpec(
        "b7.hostile",
        "b7",
        "… the same, every line a shape of its own (the caches' worst case)",
        "< 5 s",
    ),
)

ROW_IDS: tuple[str, ...] = tuple(spec.id for spec in CATALOG)


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "no")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(outcomes: dict[str, Outcome], parts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for spec in CATALOG:
        outcome = outcomes.get(spec.id)
        if outcome is None:
            status = parts.get(spec.part, {}).get("status", "skipped")
            error = parts.get(spec.part, {}).get("error", "")
            outcome = Outcome(
                spec.id,
                "not run" if status == "skipped" else "failed",
                None if status == "skipped" else False,
                notes=str(error)[:200],
            )
        rows.append({**asdict(spec), **asdict(outcome)})
    return rows


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        "# celery-parselog benchmarks",
        "",
        f"- Machine: {machine_line(meta['machine'])}",
        f"- Code: {code_line(meta['code'])}",
        f"- Command: `{meta['command']}` (mode `{meta['mode']}`)",
        f"- Sizes: {_sizes_line(meta['sizes'])}",
        f"- Started {meta['started_utc']}, took {meta['duration_seconds'] / 60:.1f} min",
        "- Times are compared only as ratios or differences of variants run side by "
        "side (interleaved) in this run; the JSON keeps every repetition.",
        "",
    ]
    for part, heading in PARTS.items():
        part_rows = [row for row in rows if row["part"] == part]
        lines += [
            f"## {heading}",
            "",
            "| Row | Benchmark | Target | Measured | Met? | Notes |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {row['id']} | {_cell(row['title'])} | {_cell(row['target'])} | "
            f"{_cell(row['measured'])} | {_met(row['met'])} | {_cell(row['notes'])} |"
            for row in part_rows
        ]
        note = meta["parts"].get(part, {}).get("method")
        if note:
            lines += ["", str(note)]
        lines.append("")
    missed = [row["id"] for row in rows if row["met"] is False]
    lines.append("Targets missed: " + (", ".join(missed) if missed else "none") + ".")
    return "\n".join(lines) + "\n"


def _sizes_line(sizes: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sizes.items() if key != "mode")


def write_report(
    out: Path,
    meta: dict[str, Any],
    outcomes: dict[str, Outcome],
) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Write ``latest.json`` and ``latest.md`` into ``out``; return their paths and the rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = _rows(outcomes, meta["parts"])
    json_path, md_path = out / "latest.json", out / "latest.md"
    json_path.write_text(json.dumps({**meta, "rows": rows}, indent=2, sort_keys=False) + "\n")
    md_path.write_text(markdown(meta, rows))
    return json_path, md_path, rows
