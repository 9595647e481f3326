"""Running the benchmark project's tasks in this process exactly as a worker runs them.

A worker's pool executes each task through the tracer Celery builds for it
(``celery.app.trace.build_tracer``): it pushes the request, sends ``task_prerun``,
runs the body, stores the result in the backend and sends ``task_postrun``. Calling
that same tracer here runs the same code path (the receivers, the router, the
upload, the result metadata in Redis, the run records) without a broker in between,
so thousands of runs take seconds and the process measured is this one.

Start-up is a worker's too: Celery's ``worker_init`` and ``worker_ready`` signals are
sent, so Celery's Django fixup closes the database connection around each task as in
a worker (with the default ``CONN_MAX_AGE``, every task opens a new one), and the
package starts capture (or not) from the worker's ``--parselog`` option.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["boot", "task_runner"]


def boot(state_dir: Path, *, capture: bool) -> Any:
    """Set Django up with the benchmark settings and return the project's Celery app.

    The root logger gets a file handler at INFO, as ``celery worker --loglevel INFO
    --logfile`` would give it. Settings come from the environment the parent set.
    """
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.proj.settings"
    os.environ["BENCH_STATE_DIR"] = str(state_dir)
    import django

    django.setup()
    import benchmarks.proj.tasks  # noqa: F401 - registers the tasks
    from benchmarks.proj.celery import app

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handler = logging.FileHandler(state_dir / "worker.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s] %(message)s"))
    root.addHandler(handler)
    _start_like_a_worker(app, capture=capture)
    return app


class _WorkerStandIn:
    """What the ``worker_init`` and ``worker_ready`` receivers read from their sender:
    the app, the ``--parselog`` option, and the pool (solo: tasks run in this process;
    Celery's Django fixup asks for it each time it closes the database connections)."""

    pool_cls = "solo"

    def __init__(self, app: Any, *, capture: bool) -> None:
        self.app = app
        self.options = {"parselog": capture}


def _start_like_a_worker(app: Any, *, capture: bool) -> None:
    """Send the signals ``celery worker --parselog`` (or ``--no-parselog``) sends at
    start-up, so every receiver a worker has is connected: Celery's Django fixup
    (its per-task database handling), and the package's capture and spool recovery."""
    from celery import signals

    from celery_parselog import worker

    stand_in = _WorkerStandIn(app, capture=capture)
    signals.worker_init.send(sender=stand_in)
    signals.worker_ready.send(sender=stand_in)
    fixup = next((f for f in app._fixups if type(f).__name__ == "DjangoFixup"), None)
    if fixup is None or fixup._worker_fixup is None:
        raise RuntimeError("Celery's Django fixup did not install its worker part")
    if capture and worker.active_receivers() is None:
        raise RuntimeError("capture did not start; see the worker log in the state folder")


def task_runner(app: Any, name: str) -> Callable[..., Any]:
    """A function that runs task ``name`` once, like a solo worker would, and returns its value."""
    from celery.app.trace import build_tracer
    from celery.utils import uuid

    task = app.tasks[f"benchmarks.proj.tasks.{name}"]
    trace = build_tracer(task.name, task, app=app, eager=False, hostname="bench@inprocess")

    def run(*args: Any) -> Any:
        task_id = uuid()
        request = {
            "id": task_id,
            "retries": 0,
            "is_eager": False,
            "hostname": "bench@inprocess",
            "delivery_info": {"exchange": "", "routing_key": "celery", "priority": 0},
        }
        retval, info, _, _ = trace(task_id, list(args), {}, request)
        if info is not None and info.state != "SUCCESS":
            raise RuntimeError(f"{name} ended in {info.state}: {retval!r}")
        return retval

    return run
