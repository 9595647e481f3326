"""B4: many captured runs in one process leave nothing behind.

Each variant runs in a child process of its own, in-process through Celery's tracer
(the code path of a solo worker, see :mod:`benchmarks.inprocess`), with Redis as
result backend: warm-up runs first (imports, connections, caches), a snapshot, then
the measured runs, another snapshot. Capture stores to ``FileSystemStorage``; the
baselines upload through the project's default storage and save a row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.context import Context, PartResult, child_entry, run_child
from benchmarks.procstate import snapshot
from benchmarks.report import Outcome

__all__ = ["run"]

TASKS = {"capture": "tiny", "per_run_logger": "tiny_perrun", "handler_swap": "tiny_swap"}
_RSS_LIMIT_MIB = 10.0


def child(params: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.inprocess import boot, task_runner

    variant = str(params["variant"])
    state = Path(params["state"])
    capture = variant == "capture"
    app = boot(state, capture=capture)
    run_task = task_runner(app, TASKS[variant])
    files_in = state / ("spool" if capture else "baseline")
    warmup, tasks = int(params["warmup"]), int(params["tasks"])
    for number in range(warmup):
        run_task(number)
    before = snapshot(files_in)
    started = time.perf_counter()
    for number in range(warmup, warmup + tasks):
        run_task(number)
    seconds = time.perf_counter() - started
    after = snapshot(files_in)
    return {"before": before, "after": after, "tasks": tasks, "warmup": warmup, "seconds": seconds}


def _delta(data: dict[str, Any], field: str) -> int:
    return int(data["after"][field]) - int(data["before"][field])


def _growth(data: dict[str, Any]) -> str:
    return (
        f"loggers {_delta(data, 'loggers'):+d}, handlers {_delta(data, 'handlers'):+d}, "
        f"fds {_delta(data, 'fds'):+d}, threads {_delta(data, 'threads'):+d}, "
        f"files {_delta(data, 'files'):+d}, RSS {_delta(data, 'rss_kib') / 1024:+.1f} MiB"
    )


def run(ctx: Context) -> PartResult:
    sizes = ctx.sizes
    raw: dict[str, Any] = {}
    for variant in TASKS:
        folder = ctx.work / f"b4-{variant}"
        raw[variant] = run_child(
            "benchmarks.b4_leaks",
            {
                "variant": variant,
                "state": str(folder),
                "tasks": sizes.b4_tasks,
                "warmup": sizes.b4_warmup,
            },
            ctx.base_env(folder, BENCH_STORAGE="fs"),
            folder,
            timeout=7200,
        )
    data = raw["capture"]

    def unchanged(row: str, *fields: str) -> Outcome:
        deltas = [_delta(data, field) for field in fields]
        text = " / ".join(f"{delta:+d}" for delta in deltas)
        values = " / ".join(f"{data['before'][field]} → {data['after'][field]}" for field in fields)
        return Outcome(row, text, all(delta == 0 for delta in deltas), float(max(deltas)), values)

    rss = _delta(data, "rss_kib") / 1024
    outcomes = [
        unchanged("b4.loggers", "loggers"),
        unchanged("b4.handlers", "handlers"),
        unchanged("b4.fds", "fds"),
        unchanged("b4.threads", "threads", "os_threads"),
        unchanged("b4.spool", "files"),
        Outcome(
            "b4.rss",
            f"{rss:+.1f} MiB",
            rss <= _RSS_LIMIT_MIB,
            rss,
            f"{data['before']['rss_kib'] / 1024:.0f} → {data['after']['rss_kib'] / 1024:.0f} MiB",
        ),
        Outcome(
            "b4.baseline_perrun",
            _growth(raw["per_run_logger"]),
            None,
            notes=f"over {sizes.b4_tasks:,} runs; each run adds a logger and a placeholder "
            "for its parent name to the registry",
        ),
        Outcome(
            "b4.baseline_swap",
            _growth(raw["handler_swap"]),
            None,
            notes=f"over {sizes.b4_tasks:,} runs; Celery's line logged after each run reopens "
            "the run's file after its upload, and that file stays",
        ),
    ]
    method = (
        f"{sizes.b4_tasks:,} runs per variant after {sizes.b4_warmup} warm-up runs, each "
        "variant in a fresh process, in-process through Celery's tracer with the receivers "
        "connected (capture) or the baseline in the task body; before/after snapshots "
        "taken after a full garbage collection."
    )
    return PartResult(outcomes, raw, method)


if __name__ == "__main__":
    child_entry(child)
