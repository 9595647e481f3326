"""B5: records of tasks running side by side in one process end up in their own log only.

Three workers with ``--pool threads --concurrency 8`` each run the same batch of
tasks that log a tagged line per step (``b5 file=<id> step=<n> src=<source>``)
through a module logger, the root logger and ``print()``, sleeping between steps so
that eight runs overlap all the time. Every stored log is read back and every tagged
line checked: a line of another file in a log is "wrong", a line of the log's own
file that is not there is "missing".

The per-run-logger baseline logs through its own logger and cannot see ``print()``,
so only its two logger lines per step are expected of it.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from celery.result import AsyncResult

from benchmarks.context import Context, PartResult
from benchmarks.report import Outcome
from benchmarks.workers import WorkerSpec, client, start_workers, stop_workers

__all__ = ["run"]

_TAG = re.compile(r"b5 file=(\d+) step=(\d+) src=(\w+)")
THREADS = ("--pool", "threads", "--concurrency", "8")
PAUSE = 0.002


@dataclass(frozen=True)
class _Variant:
    name: str
    spec: WorkerSpec
    task: str
    sources: tuple[str, ...]


VARIANTS = (
    _Variant(
        "capture",
        WorkerSpec("b5-capture", capture=True, storage="fs", pool=THREADS),
        "interleave",
        ("logger", "root", "print"),
    ),
    _Variant(
        "per_run_logger",
        WorkerSpec("b5-perrun", capture=False, storage="s3", pool=THREADS),
        "interleave_perrun",
        ("logger", "root"),
    ),
    _Variant(
        "handler_swap",
        WorkerSpec("b5-swap", capture=False, storage="s3", pool=THREADS),
        "interleave_swap",
        ("logger", "root", "print"),
    ),
)


def check(file_id: int, text: str, steps: int, sources: tuple[str, ...]) -> dict[str, int]:
    """Count the tagged lines of one task's log: its own, other tasks', and missing ones."""
    seen: set[tuple[int, str]] = set()
    wrong = own = duplicated = 0
    for line in text.splitlines():
        match = _TAG.search(line)
        if match is None:
            continue
        if int(match.group(1)) != file_id:
            wrong += 1
            continue
        own += 1
        item = (int(match.group(2)), match.group(3))
        if item in seen:
            duplicated += 1
        seen.add(item)
    expected = {(step, source) for step in range(steps) for source in sources}
    return {
        "wrong": wrong,
        "own": own,
        "missing": len(expected - seen),
        "duplicated": duplicated,
    }


def _capture_reader(result: AsyncResult[Any]) -> str:
    from celery_parselog import log_info

    info = log_info(result, wait=60)
    if info is None or not info.stored:
        raise RuntimeError(f"the log of task {result.id} was not stored: {info}")
    path = Path(unquote(urlparse(info.uri).path))
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", "replace")


def _read_log(
    ctx: Context, s3: Any, variant: _Variant, result: AsyncResult[Any], value: dict[str, Any]
) -> str:
    if variant.spec.capture:
        return _capture_reader(result)
    body = s3.get_object(Bucket=ctx.bucket, Key=str(value["key"]))["Body"].read()
    return str(body.decode("utf-8", "replace"))


def run(ctx: Context) -> PartResult:
    if ctx.s3 is None:
        raise RuntimeError("B5 needs the S3 server")
    s3 = ctx.s3.client()
    sizes = ctx.sizes
    with client(ctx) as app:
        workers = start_workers(ctx, app, [variant.spec for variant in VARIANTS], ctx.work / "b5")
        raw: dict[str, Any] = {}
        try:
            for variant, worker in zip(VARIANTS, workers, strict=True):
                first = 100_000 * (VARIANTS.index(variant) + 1)
                results = [
                    worker.send(app, variant.task, first + number, sizes.b5_steps, PAUSE)
                    for number in range(sizes.b5_tasks)
                ]
                totals = {"wrong": 0, "own": 0, "missing": 0, "duplicated": 0}
                for result in results:
                    value = worker.wait(result)
                    text = _read_log(ctx, s3, variant, result, value)
                    counts = check(int(value["file"]), text, sizes.b5_steps, variant.sources)
                    for name, count in counts.items():
                        totals[name] += count
                raw[variant.name] = {
                    **totals,
                    "tasks": sizes.b5_tasks,
                    "expected_per_task": sizes.b5_steps * len(variant.sources),
                }
        finally:
            stop_workers(workers)
    capture = raw["capture"]

    def summary(name: str) -> str:
        counts = raw[name]
        expected = counts["tasks"] * counts["expected_per_task"]
        return f"{counts['wrong']} wrong, {counts['missing']} missing of {expected}"

    outcomes = [
        Outcome(
            "b5.wrong",
            str(capture["wrong"]),
            capture["wrong"] == 0,
            capture["wrong"],
            f"{capture['own']} own lines checked in {capture['tasks']} logs",
        ),
        Outcome(
            "b5.lost",
            str(capture["missing"]),
            capture["missing"] == 0,
            capture["missing"],
            f"{capture['duplicated']} duplicated",
        ),
        Outcome("b5.baseline_perrun", summary("per_run_logger"), None),
        Outcome("b5.baseline_swap", summary("handler_swap"), None),
    ]
    method = (
        f"{sizes.b5_tasks} tasks per worker, {sizes.b5_steps} steps each with a "
        f"{PAUSE * 1000:.0f} ms pause, 8 threads; capture stores to FileSystemStorage, the "
        "baselines upload to S3 (moto)."
    )
    return PartResult(outcomes, raw, method)
