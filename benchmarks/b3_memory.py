"""B3: a task that logs a lot of text does not grow the worker's memory, and the size
cap keeps the spool folder bounded.

A child process boots the benchmark project with capture on and ``FileSystemStorage``
and runs the ``spew`` task through Celery's own tracer (see :mod:`benchmarks.inprocess`),
so the whole run is measured: spool file, upload, result metadata. The peak RSS
(``VmHWM``) is reset right before the run where Linux allows it; growth is the peak
during the run minus the RSS before it. Three configurations run: the defaults
(gzip, with the default ``CELERY_PARSELOG_MAX_BYTES``), plain text, and gzip without
a cap, which keeps all of the text. The parent process watches the spool folder from
outside while the child runs, for its size at its largest, and counts the text of
the stored log afterwards.
"""

from __future__ import annotations

import gc
import gzip
import logging
import time
from pathlib import Path
from typing import Any

from benchmarks.context import Context, PartResult, child_entry, run_child
from benchmarks.procstate import reset_peak_rss, status_kib
from benchmarks.report import Outcome

__all__ = ["run"]

_MIB = 1024 * 1024
_LIMIT_MIB = 32.0
# The marker line a capped log gets where records were left out.
_MARKER_ALLOWANCE = 4096

VARIANTS: dict[str, dict[str, str]] = {
    "gzip": {"BENCH_COMPRESS": "1"},
    "plain": {"BENCH_COMPRESS": "0"},
    "uncapped": {"BENCH_COMPRESS": "1", "BENCH_MAX_BYTES": "0"},
}


def _line_bytes() -> int:
    """Bytes of one ``spew`` line as the default format writes it (all lines are equal)."""
    from benchmarks.proj.tasks import PAYLOAD
    from celery_parselog.conf import DEFAULT_FORMAT
    from celery_parselog.formatting import build_formatter

    record = logging.LogRecord(
        "benchproj.records", logging.INFO, "", 0, "row %09d of file %d: %s", (0, 7, PAYLOAD), None
    )
    formatter = build_formatter(DEFAULT_FORMAT, task_id="x", task_name="x")
    return len(formatter.format(record).encode()) + 1


def _stored_text(media: Path) -> tuple[int, int, int]:
    """Bytes on disk, bytes of text and lines of the last log stored under ``media``."""
    logs = sorted(media.rglob("*.log*"), key=lambda path: path.stat().st_mtime)
    path = logs[-1]
    text = lines = 0
    opener: Any = gzip.open if path.suffix == ".gz" else Path.open
    with opener(path, "rb") as stream:
        while chunk := stream.read(_MIB):
            text += len(chunk)
            lines += chunk.count(b"\n")
    return path.stat().st_size, text, lines


def _cap() -> int | None:
    from celery_parselog.conf import ParselogSettings

    value = getattr(ParselogSettings(), "max_bytes", None)
    return int(value) if value is not None else None


def child(params: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.inprocess import boot, task_runner

    state = Path(params["state"])
    app = boot(state, capture=True)
    spew = task_runner(app, "spew")
    line = _line_bytes()
    count = int(params["bytes"]) // line
    spew(1000)  # warm-up: imports, the first spool file, upload and Redis connection
    gc.collect()
    rss_before = status_kib("VmRSS")
    hwm_before = status_kib("VmHWM")
    reset = reset_peak_rss()
    started = time.perf_counter()
    spew(count)
    seconds = time.perf_counter() - started
    hwm_after = status_kib("VmHWM")
    rss_after = status_kib("VmRSS")
    on_disk, text, lines = _stored_text(state / "media")
    return {
        "records": count,
        "logged_bytes": count * line,
        "max_bytes": _cap(),
        "rss_before_kib": rss_before,
        "hwm_before_kib": hwm_before,
        "hwm_after_kib": hwm_after,
        "rss_after_kib": rss_after,
        "peak_reset": reset,
        "growth_kib": hwm_after - rss_before,
        "seconds": seconds,
        "stored_bytes": on_disk,
        "stored_text_bytes": text,
        "stored_lines": lines,
    }


class _FolderPeak:
    """The largest total size of a folder's log files, sampled from outside.

    Manifests (``.json``, a few hundred bytes beside each log) are left out: the cap
    is about the log's own bytes.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.peak = 0

    def __call__(self) -> None:
        total = 0
        if self.folder.exists():
            for path in self.folder.rglob("*"):
                try:
                    if path.is_file() and path.suffix != ".json":
                        total += path.stat().st_size
                except FileNotFoundError:
                    continue  # removed while being looked at
        self.peak = max(self.peak, total)


def _mib(value: float) -> str:
    return f"{value / _MIB:,.1f} MiB"


def run(ctx: Context) -> PartResult:
    size, cap = ctx.sizes.b3_bytes, ctx.sizes.b3_cap
    raw: dict[str, Any] = {}
    for name, variant in VARIANTS.items():
        settings = dict(variant)
        if cap is not None and "BENCH_MAX_BYTES" not in settings:
            settings["BENCH_MAX_BYTES"] = str(cap)
        folder = ctx.work / f"b3-{name}"
        peak = _FolderPeak(folder / "spool")
        raw[name] = run_child(
            "benchmarks.b3_memory",
            {"state": str(folder), "bytes": size},
            ctx.base_env(folder, BENCH_STORAGE="fs", **settings),
            folder,
            timeout=3600,
            sample=peak,
        )
        # Without a cap the stored copy is the spool file at its end, which sampling
        # every 0.1 s may just miss.
        floor = raw[name]["stored_bytes"] if name == "uncapped" else 0
        raw[name]["spool_peak_bytes"] = max(peak.peak, floor)

    def rss(row: str, name: str) -> Outcome:
        data = raw[name]
        growth = data["growth_kib"] / 1024
        how = "VmHWM reset before the run" if data["peak_reset"] else "VmHWM not resettable"
        return Outcome(
            row,
            f"{growth:+.1f} MiB",
            growth <= _LIMIT_MIB,
            growth,
            f"{_mib(data['logged_bytes'])} of text logged, {_mib(data['stored_text_bytes'])} "
            f"stored; RSS before {data['rss_before_kib'] / 1024:.0f} MiB; {how}",
        )

    uncapped = raw["uncapped"]
    outcomes = [
        rss("b3.rss_gzip", "gzip"),
        rss("b3.rss_plain", "plain"),
        rss("b3.rss_uncapped", "uncapped"),
        Outcome(
            "b3.disk",
            f"{uncapped['spool_peak_bytes'] / uncapped['logged_bytes']:.3f}",
            None,
            uncapped["spool_peak_bytes"] / uncapped["logged_bytes"],
            f"{_mib(uncapped['spool_peak_bytes'])} for {_mib(uncapped['logged_bytes'])} of text",
        ),
        _cap_outcome(raw["gzip"], raw["plain"], default_cap=cap is None),
    ]
    method = (
        f"One run of a task logging {size / _MIB:,.0f} MiB of text (equal lines of the "
        "default format) through a module logger, in a child process running it through "
        "Celery's tracer with capture on and FileSystemStorage (spool, upload and metadata "
        "included); one child per configuration: gzip and plain text with the size cap "
        + ("(the package's default)" if cap is None else f"set to {_mib(cap)}")
        + ", and gzip without one. Spool size sampled every 0.1 s from the parent process."
    )
    return PartResult(outcomes, raw, method)


def _cap_outcome(gz: dict[str, Any], plain: dict[str, Any], default_cap: bool) -> Outcome:
    """Judged on both capped runs: gzip (whose head is compressed) and plain text."""
    cap = gz["max_bytes"]
    if cap is None:
        return Outcome("b3.max_bytes", "not available yet", None, notes="no such setting")
    if not cap:
        return Outcome("b3.max_bytes", "no cap by default", None, notes="MAX_BYTES is 0")
    within = all(
        run["stored_text_bytes"] <= cap + _MARKER_ALLOWANCE and run["spool_peak_bytes"] <= cap
        for run in (gz, plain)
    )
    reached = gz["logged_bytes"] > cap
    return Outcome(
        "b3.max_bytes",
        f"gzip: stored {_mib(gz['stored_text_bytes'])}, spool peak "
        f"{_mib(gz['spool_peak_bytes'])}; plain: stored {_mib(plain['stored_text_bytes'])}, "
        f"spool peak {_mib(plain['spool_peak_bytes'])}",
        within,
        max(
            run[field] for run in (gz, plain) for field in ("stored_text_bytes", "spool_peak_bytes")
        )
        / cap,
        f"cap {_mib(cap)}{' (the default)' if default_cap else ''}; "
        f"{_mib(gz['logged_bytes'])} logged"
        + ("" if reached else ", below the cap: this size does not reach it")
        + "; stored = text of the uploaded log, spool = its files on disk (manifest excluded)",
    )


if __name__ == "__main__":
    child_entry(child)
