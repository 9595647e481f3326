"""Real ``celery worker`` subprocesses of the benchmark project, and a client to feed them.

Every worker consumes a queue of its own, so several can be started at once (which
saves start-up time) while only one is given work at a time.
"""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from benchmarks.context import REPO, Context

__all__ = ["BenchWorker", "WorkerSpec", "client", "start_workers", "stop_workers"]

TASKS = "benchmarks.proj.tasks"


@dataclass(frozen=True)
class WorkerSpec:
    label: str
    capture: bool
    storage: str = "fs"
    pool: Sequence[str] = ("--pool", "solo")
    # "sqlite" (a copy of the migrated file of its own) or "postgresql" (the run's server).
    database: str = "sqlite"


@dataclass
class BenchWorker:
    spec: WorkerSpec
    name: str
    queue: str
    state_dir: Path
    process: subprocess.Popen[bytes]
    output: Path

    def send(self, app: Celery, task: str, *args: Any) -> AsyncResult[Any]:
        return app.send_task(f"{TASKS}.{task}", args=args, queue=self.queue)

    def wait(self, result: AsyncResult[Any], timeout: float = 300.0) -> Any:
        """A result, failing early (with the worker's output) if the worker died."""
        deadline = time.monotonic() + timeout
        while not result.ready():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker {self.spec.label} exited with {self.process.returncode}:\n"
                    + self.output.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.spec.label} did not finish a task in time")
            time.sleep(0.01)
        return result.get(timeout=10)


@contextmanager
def client(ctx: Context) -> Iterator[Celery]:
    """A client app that feeds the workers, with Python's cycle collector paused meanwhile.

    An ``AsyncResult`` unsubscribes from Redis in ``__del__``. When the cycle collector
    frees one in the middle of another Redis command (any allocation can start a
    collection), that unsubscribe re-enters the same pub/sub connection and, on
    Celery 5.3, waits for ever: the smoke run hung there. With the collector paused,
    results are freed only where the part drops them, and the rest in one collection
    here, while Redis is still up.
    """
    app = Celery("bench-client", broker=ctx.redis_url, backend=ctx.redis_url, set_as_current=False)
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield app
    finally:
        gc.collect()
        if collecting:
            gc.enable()
        app.close()


def start_workers(
    ctx: Context, app: Celery, specs: Sequence[WorkerSpec], folder: Path
) -> list[BenchWorker]:
    """Start every worker, then wait until each has run a first task."""
    workers = []
    for spec in specs:
        unique = uuid.uuid4().hex[:8]
        state_dir = folder / spec.label
        state_dir.mkdir(parents=True, exist_ok=True)
        output = state_dir / "worker.out"
        env = ctx.base_env(state_dir, BENCH_STORAGE=spec.storage)
        if spec.database == "postgresql":
            env["BENCH_DATABASE"] = ctx.postgres_json()
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "benchmarks.proj",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "-n",
                    f"bench-{spec.label}-{unique}@localhost",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-Q",
                    f"bench-{spec.label}-{unique}",
                    "--parselog" if spec.capture else "--no-parselog",
                    *spec.pool,
                ],
                cwd=REPO,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        workers.append(
            BenchWorker(
                spec,
                f"bench-{spec.label}-{unique}",
                f"bench-{spec.label}-{unique}",
                state_dir,
                process,
                output,
            )
        )
    try:
        for worker in workers:
            worker.wait(worker.send(app, "ready"), timeout=120)
    except BaseException:
        stop_workers(workers)
        raise
    return workers


def stop_workers(workers: Sequence[BenchWorker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.process.wait(30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(10)
