"""Prometheus metrics of capture and delivery, when the ``metrics`` extra is installed.

The capture and delivery code calls the small functions below at the moment each
thing happens (:func:`run_captured` when a run starts being captured,
:func:`run_stored` once its log is stored, and so on). They are meant to be called
as ``metrics.run_stored(...)`` on the module, from any process of a worker.

Without ``prometheus_client`` they cost nothing measurable: the first call looks
for it once, and every call after that returns at its first line. With it, each
call updates metrics in prometheus_client's default registry. Under the prefork
pool every child has its own memory, so a worker must run in prometheus_client's
multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` names an empty folder before the
worker starts, each process writes its values there, and :func:`serve`, in the
worker's main process, adds them up when Prometheus scrapes.

Scraping a worker (see the README's "Metrics" section)::

    # proj/celery.py
    from celery.signals import worker_ready, worker_process_shutdown
    from celery_parselog import metrics

    @worker_ready.connect
    def _serve_metrics(**kwargs):
        metrics.serve(9808)

    @worker_process_shutdown.connect
    def _forget_child(pid, **kwargs):
        metrics.process_exited(pid)
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "process_exited",
    "run_captured",
    "run_lost",
    "run_recovered",
    "run_stored",
    "serve",
    "spool_backlog",
    "upload_failed",
]

EXTRA = "celery-parselog[metrics]"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Small logs upload in milliseconds; big ones or a slow store take seconds.
UPLOAD_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Metrics:
    """The metric objects, made once per process in the given registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        where = REGISTRY if registry is None else registry
        prefix = "celery_parselog"

        def counter(name: str, documentation: str) -> Counter:
            return Counter(f"{prefix}_{name}", documentation, ["task"], registry=where)

        self.captured = counter("runs_captured", "Runs whose log capture started.")
        self.stored = counter("runs_stored", "Runs whose log was stored.")
        self.upload_failed = counter(
            "upload_failures", "Uploads of a run's log that gave up after their attempts."
        )
        self.recovered = counter(
            "runs_recovered", "Runs a dead process left behind whose log recovery stored."
        )
        self.lost = counter("runs_lost", "Runs marked lost: their worker died and did not return.")
        self.bytes = counter("stored_bytes", "Bytes of logs stored (after compression).")
        self.upload_seconds = Histogram(
            f"{prefix}_upload_seconds",
            "Time to store one run's log, from the start of its upload to its end.",
            ["task"],
            buckets=UPLOAD_BUCKETS,
            registry=where,
        )
        # Reported by one process per worker (the one that scans the spool); the most
        # recent value of a live process is the one that holds.
        self.backlog_files = Gauge(
            f"{prefix}_spool_backlog_files",
            "Spool files waiting for delivery on this worker.",
            ["worker"],
            multiprocess_mode="livemostrecent",
            registry=where,
        )
        self.backlog_bytes = Gauge(
            f"{prefix}_spool_backlog_bytes",
            "Bytes of spool files waiting for delivery on this worker.",
            ["worker"],
            multiprocess_mode="livemostrecent",
            registry=where,
        )


_UNRESOLVED: Final[Any] = object()
_impl: _Metrics | None = _UNRESOLVED


_resolving = threading.Lock()


def _resolve() -> _Metrics | None:
    """Make the metrics on first use, or settle for none when the extra is missing.

    Under a lock: the sweeper thread and the main thread may both get here first, and
    a registry refuses a metric made twice.
    """
    global _impl
    with _resolving:
        if _impl is _UNRESOLVED:
            try:
                _impl = _Metrics()
            except ImportError:
                _impl = None
    return _impl


def _metrics() -> _Metrics | None:
    return _resolve() if _impl is _UNRESOLVED else _impl


def run_captured(task_name: str) -> None:
    """A run of ``task_name`` started being captured."""
    found = _impl if _impl is not _UNRESOLVED else _resolve()
    if found is not None:
        found.captured.labels(task_name).inc()


def run_stored(task_name: str, nbytes: int, seconds: float) -> None:
    """A run's log of ``nbytes`` (as stored) was stored, in ``seconds`` of upload."""
    found = _impl if _impl is not _UNRESOLVED else _resolve()
    if found is not None:
        found.stored.labels(task_name).inc()
        found.bytes.labels(task_name).inc(nbytes)
        found.upload_seconds.labels(task_name).observe(seconds)


def upload_failed(task_name: str, seconds: float) -> None:
    """Storing a run's log gave up after ``seconds`` spent on its attempts."""
    found = _impl if _impl is not _UNRESOLVED else _resolve()
    if found is not None:
        found.upload_failed.labels(task_name).inc()
        found.upload_seconds.labels(task_name).observe(seconds)


def run_recovered(task_name: str, nbytes: int) -> None:
    """Recovery stored the log of a run a dead process left behind (``nbytes`` as stored)."""
    found = _impl if _impl is not _UNRESOLVED else _resolve()
    if found is not None:
        found.recovered.labels(task_name).inc()
        found.bytes.labels(task_name).inc(nbytes)


def run_lost(task_name: str) -> None:
    """A run was marked lost: its worker is gone."""
    found = _impl if _impl is not _UNRESOLVED else _resolve()
    if found is not None:
        found.lost.labels(task_name).inc()


def spool_backlog(files: int, nbytes: int, worker: str = "") -> None:
    """The spool of ``worker`` (its hostname) holds ``files`` waiting, ``nbytes`` in all."""
    found = _impl if _impl is not _UNRESOLVED else _resolve()
    if found is not None:
        found.backlog_files.labels(worker).set(files)
        found.backlog_bytes.labels(worker).set(nbytes)


def process_exited(pid: int) -> None:
    """Forget the live gauges of process ``pid`` in multiprocess mode (a pool child that
    exited); its counters stay counted. Nothing to do in a single process."""
    if _metrics() is None or not os.environ.get(MULTIPROC_ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``addr:port`` from a thread of this process.

    Call it in the worker's main process. In multiprocess mode it collects the values
    every process of the worker wrote into ``PROMETHEUS_MULTIPROC_DIR``; otherwise it
    serves this process's default registry. Raises when the extra is missing, so a
    worker asked to serve metrics never starts silently without them.
    """
    if _metrics() is None:
        raise ImportError(f"serving metrics needs prometheus_client: pip install '{EXTRA}'")
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry: CollectorRegistry | None = None
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        if not Path(folder).is_dir():
            raise RuntimeError(f"{MULTIPROC_ENV}={folder!r} is not a folder")
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    if registry is None:
        start_http_server(port, addr=addr)
    else:
        start_http_server(port, addr=addr, registry=registry)
