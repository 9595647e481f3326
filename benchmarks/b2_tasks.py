"""B2: what capture adds to each task run by a real worker, against the hand-written designs.

Like for like: three set-ups, each with its storage and its database, and in each
four solo-pool workers of the benchmark project running the same tiny task (three
log records): capture off, capture on, and the two hand-written designs (capture
off), which upload through the same Django storage and then save one row with the
log's address on the same database, as the memo's own design does.

* ``fs_sqlite``: ``FileSystemStorage`` and SQLite (a migrated copy per worker);
* ``s3_sqlite``: django-storages' ``S3Storage`` on moto's server over HTTP, SQLite;
* ``s3_postgresql``: ``S3Storage`` and a real PostgreSQL server on loopback, one
  database for all four workers, Django's default ``CONN_MAX_AGE`` (a new connection
  per task, as Celery's Django fixup closes it around each task).

All twelve workers are started first; then, round after round and in a rotated
order, each is given a batch of tasks.

A batch is queued behind a "gate" task that holds the worker until every task of the
batch is in Redis, so the worker never waits for the client. Each task returns when
it started (``perf_counter`` of the worker), so the time from one task's start to the
next one's is the full cost of a task in that worker: receiving it, ``task_prerun``,
the body, storing the result, ``task_postrun`` (capture's upload, metadata and rows).
The added cost of a variant in a round is its median interval minus the capture-off
worker's of the same set-up in the same round; the figure quoted is the median of the
rounds. S3 requests are counted as real HTTP requests reaching moto's server while
one batch runs, after the last log of the batch was confirmed stored.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from benchmarks.context import Context, PartResult
from benchmarks.report import Outcome
from benchmarks.stats import median, quartiles, rotated
from benchmarks.workers import BenchWorker, WorkerSpec, client, start_workers, stop_workers
from tests.servers import CountingS3Server, S3Request, classify, summarize

__all__ = ["run"]

WARMUP_TASKS = 5


@dataclass(frozen=True)
class _Variant:
    name: str
    spec: WorkerSpec
    task: str


# (name, storage, database) of each set-up; the report's rows are named after them.
SETUPS = (
    ("fs_sqlite", "fs", "sqlite"),
    ("s3_sqlite", "s3", "sqlite"),
    ("s3_postgresql", "s3", "postgresql"),
)
# (name, capture, task) of the variants run in every set-up.
KINDS = (
    ("off", False, "tiny"),
    ("capture", True, "tiny"),
    ("per_run_logger", False, "tiny_perrun"),
    ("handler_swap", False, "tiny_swap"),
)
NAIVE = ("per_run_logger", "handler_swap")
# The set-up whose S3 requests are counted for the request rows.
REQUESTS_SETUP = "s3_sqlite"

VARIANTS = tuple(
    _Variant(
        f"{setup}.{kind}",
        WorkerSpec(
            f"{setup}-{kind}".replace("_", "-"),
            capture=capture,
            storage=storage,
            database=database,
        ),
        task,
    )
    for setup, storage, database in SETUPS
    for kind, capture, task in KINDS
)


def _intervals(starts: list[float]) -> list[float]:
    ordered = sorted(starts)
    return [later - earlier for earlier, later in itertools.pairwise(ordered)]


class _Runner:
    def __init__(self, ctx: Context, app: Celery, s3: CountingS3Server, gates: Path) -> None:
        self.ctx, self.app, self.s3, self.gates = ctx, app, s3, gates
        gates.mkdir(parents=True, exist_ok=True)
        self.number = 0

    def batch(self, worker: BenchWorker, variant: _Variant, size: int) -> dict[str, Any]:
        mark = self.s3.mark()
        gate = self.gates / uuid.uuid4().hex
        held = worker.send(self.app, "gate", str(gate))
        results = [worker.send(self.app, variant.task, self.number + i) for i in range(size)]
        self.number += size
        gate.touch()
        worker.wait(held)
        starts = [worker.wait(result) for result in results]
        keys = self._stored_keys(results) if variant.spec.capture else []
        requests = self.s3.since(mark)
        intervals = _intervals([float(start[0]) for start in starts])
        cpu = _intervals([float(start[1]) for start in starts])
        return {
            "tasks": size,
            "median_interval_s": median(intervals),
            "mean_interval_s": sum(intervals) / len(intervals),
            "median_cpu_interval_s": median(cpu),
            "requests": summarize(requests),
            "puts_per_key": _puts_per_key(requests, keys, self.ctx.bucket),
        }

    def _stored_keys(self, results: list[AsyncResult[Any]]) -> list[str]:
        from celery_parselog import log_info

        keys = []
        for result in results:
            info = log_info(result, wait=60)
            if info is None or not info.stored:
                raise RuntimeError(f"the log of task {result.id} was not stored: {info}")
            keys.append(info.key)
        return keys


def _puts_per_key(requests: list[S3Request], keys: list[str], bucket: str) -> list[int]:
    """How many object PUTs each stored log received (``[]`` when nothing went to S3)."""
    puts = Counter(
        request.path.removeprefix(f"/{bucket}/")
        for request in requests
        if classify(request) == "PUT"
    )
    return [puts.get(key, 0) for key in keys] if puts else []


def run(ctx: Context) -> PartResult:
    if ctx.s3 is None or ctx.postgres is None:
        raise RuntimeError("B2 needs the S3 server and the PostgreSQL server")
    sizes = ctx.sizes
    folder = ctx.work / "b2"
    with client(ctx) as app:
        workers = start_workers(ctx, app, [variant.spec for variant in VARIANTS], folder)
        try:
            runner = _Runner(ctx, app, ctx.s3, folder / "gates")
            by_name = dict(zip((variant.name for variant in VARIANTS), workers, strict=True))
            warmup = {
                variant.name: runner.batch(by_name[variant.name], variant, WARMUP_TASKS)
                for variant in VARIANTS
            }
            per_batch = max(2, sizes.b2_tasks // sizes.b2_rounds)
            rounds: list[dict[str, Any]] = []
            for number in range(sizes.b2_rounds):
                rounds.append(
                    {
                        variant.name: runner.batch(by_name[variant.name], variant, per_batch)
                        for variant in rotated(VARIANTS, number)
                    }
                )
        finally:
            stop_workers(workers)
    raw = {"warmup": warmup, "rounds": rounds, "tasks_per_batch": per_batch}
    outcomes = _outcomes(rounds, per_batch, warmup)
    method = (
        f"{per_batch * sizes.b2_rounds} tasks per worker in {sizes.b2_rounds} interleaved "
        f"rounds of {per_batch} (after {WARMUP_TASKS} warm-up tasks each); added time = median "
        "over rounds of (median task-to-task interval of the variant minus that of the "
        "capture-off worker in the same round). Worker CPU = the same with the worker "
        "process's CPU time instead of the clock: the rest of the added time is waiting "
        "(Redis, database and storage round trips, file system). Each set-up has its own "
        "capture-off worker; the baselines of a set-up upload through its storage and save "
        "one row on its database. Ratio = capture's added time / the faster baseline's."
    )
    return PartResult(outcomes, raw, method)


def _added_ms(rounds: list[dict[str, Any]], name: str, field: str) -> list[float]:
    off = name.rsplit(".", 1)[0] + ".off"
    return [(batch[name][field] - batch[off][field]) * 1000 for batch in rounds]


def _outcomes(
    rounds: list[dict[str, Any]], per_batch: int, warmup: dict[str, Any]
) -> list[Outcome]:
    def added(row: str, name: str, limit: float | None) -> tuple[Outcome, float]:
        values = _added_ms(rounds, name, "median_interval_s")
        value = median(values)
        low, high = quartiles(values)
        mean_based = median(_added_ms(rounds, name, "mean_interval_s"))
        cpu = median(_added_ms(rounds, name, "median_cpu_interval_s"))
        outcome = Outcome(
            row,
            f"{value:+.2f} ms",
            None if limit is None else value <= limit,
            value,
            f"IQR {low:+.2f} to {high:+.2f} ms; from mean intervals {mean_based:+.2f} ms; "
            f"worker CPU {cpu:+.2f} ms",
        )
        return outcome, value

    outcomes: list[Outcome] = []
    for setup, _, _ in SETUPS:
        capture, captured_ms = added(
            f"b2.{setup}.capture", f"{setup}.capture", 3.0 if setup == "fs_sqlite" else None
        )
        naive = {kind: added(f"b2.{setup}.{kind}", f"{setup}.{kind}", None) for kind in NAIVE}
        faster = min(naive, key=lambda kind: naive[kind][1])
        faster_ms = naive[faster][1]
        ratio = captured_ms / faster_ms if faster_ms > 0 else float("inf")
        outcomes += [capture, naive["per_run_logger"][0], naive["handler_swap"][0]]
        outcomes.append(
            Outcome(
                f"b2.{setup}.ratio",
                f"{ratio:.2f}x",
                ratio <= 1.0,
                ratio,
                f"capture {captured_ms:+.2f} ms / {faster.replace('_', ' ')} {faster_ms:+.2f} ms",
            )
        )

    name = f"{REQUESTS_SETUP}.capture"
    captured = [batch[name] for batch in rounds]
    tasks = per_batch * len(rounds)
    totals: Counter[str] = Counter()
    for batch in captured:
        totals.update(batch["requests"])
    puts = totals.get("PUT", 0)
    per_key = [count for batch in captured for count in batch["puts_per_key"]]
    others = {kind: count for kind, count in totals.items() if kind != "PUT"}
    warm_others = {kind: count for kind, count in warmup[name]["requests"].items() if kind != "PUT"}

    def per_task(name: str) -> str:
        counts: Counter[str] = Counter()
        for batch in rounds:
            counts.update(batch[name]["requests"])
        return ", ".join(f"{count / tasks:.2f} {kind}" for kind, count in sorted(counts.items()))

    return [
        *outcomes,
        Outcome(
            "b2.s3_puts",
            f"{puts / tasks:.2f} per task ({puts} PUT for {tasks} tasks)",
            puts == tasks and len(per_key) == tasks and all(count == 1 for count in per_key),
            puts / tasks,
            "each stored key received exactly one PUT"
            if per_key and all(count == 1 for count in per_key)
            else f"PUTs per stored key: {sorted(Counter(per_key).items())}",
        ),
        Outcome(
            "b2.s3_other",
            f"{sum(others.values())} for {tasks} tasks",
            not others,
            sum(others.values()) / tasks,
            ", ".join(f"{kind} {others.get(kind, 0)}" for kind in ("HEAD", "GET", "LIST"))
            + "".join(
                f", {kind} {count}"
                for kind, count in sorted(others.items())
                if kind not in ("HEAD", "GET", "LIST")
            )
            + (f"; warm-up tasks also sent {warm_others}" if warm_others else "; none in warm-up"),
        ),
        Outcome(
            "b2.baseline_requests",
            f"per-run logger: {per_task(f'{REQUESTS_SETUP}.per_run_logger')}; "
            f"handler swap: {per_task(f'{REQUESTS_SETUP}.handler_swap')}",
            None,
        ),
    ]
