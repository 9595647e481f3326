"""B1: what capture adds to every log record.

A task-like function logs N records through two ordinary, propagating module loggers
with %-arguments. The reference is the physical floor: the same records, formatted by
the same formatter, written by a plain ``logging.FileHandler`` on the root logger to a
fresh file in the same temporary folder. Capture is driven in-process the way the
worker's receivers drive it (a ``RunCapture`` entered into a ``CaptureRouter``), and
no upload happens in any variant, baselines included: this part is about records.

Each repetition runs every variant once, in an order rotated per repetition, and
each ratio is taken against the floor runs of the same repetition. Ratios use the
process's CPU time (user + system, which includes the ``write`` calls), because CPU
time is what a record costs and is less disturbed by other processes on a shared
machine than wall-clock time; wall-clock figures are kept in the JSON as well.
"""

from __future__ import annotations

import gc
import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import Token
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.context import Context, PartResult, child_entry, run_child
from benchmarks.report import Outcome
from benchmarks.stats import geometric_mean, median, quartiles, rotated

if TYPE_CHECKING:
    from celery_parselog.capture import RunCapture
    from celery_parselog.formatting import LineFormatter

__all__ = ["emit_records", "run"]

FILE_ID = 7
TASK_ID = "5c0b2f0e-0b1b-4c1e-9d9e-b1b1b1b1b1b1"
TASK_NAME = "benchmarks.b1.parse"
OTHER_TASK_NAME = "benchmarks.b1.not_selected"

Run = Callable[[], None]


def emit_records(count: int, records: logging.Logger, parsers: logging.Logger) -> None:
    """The task-like body: mostly INFO records, every tenth a WARNING, all with %-args;
    one record in fifty carries an e-mail address, as parsers' logs of people's data do."""
    for number in range(count):
        if number % 50 == 49:
            records.info("record %d of file %s: contact %s", number, FILE_ID, "ann.lee@example.org")
        elif number % 10 == 9:
            parsers.warning("bad record %d in file %s: %s", number, FILE_ID, "stray delimiter")
        else:
            records.info("record %d of file %s: %d fields", number, FILE_ID, 12)


def _count_lines(path: Path) -> int:
    opener: Callable[[Path], Any] = gzip.open if path.suffix == ".gz" else Path.open
    with opener(path) as stream:
        return sum(1 for _ in stream)


def _configure_django(folder: Path) -> None:
    """Settings for this child only: the package's defaults, this task selected, a temp spool."""
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["celery_parselog"],
        USE_TZ=True,
        STORAGES={
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(folder / "media")},
            },
        },
        CELERY_PARSELOG_TASKS=[TASK_NAME],
        CELERY_PARSELOG_SPOOL_DIR=str(folder),
    )
    django.setup()


class _Bench:
    """The variants of one child process; each yields the function that is timed."""

    def __init__(self, count: int, folder: Path) -> None:
        from celery import Celery

        from benchmarks.baselines import GlobalHandlerSwap
        from celery_parselog.conf import DEFAULT_FORMAT
        from celery_parselog.receivers import CaptureConfig, CaptureReceivers

        _configure_django(folder)
        self.count = count
        self.folder = folder
        self.text_format = DEFAULT_FORMAT
        logging.getLogger().setLevel(logging.INFO)
        self.records = logging.getLogger("benchproj.records")
        self.parsers = logging.getLogger("benchproj.parsers")
        # Validated from the settings, as a worker does when capture starts: the
        # package's defaults (level, loggers, size cap) apply to every variant, and
        # redaction is off except where a variant asks for the default set.
        from django.test import override_settings

        self.config = CaptureConfig.from_settings()
        with override_settings(CELERY_PARSELOG_REDACT=[]):
            self.unredacted = CaptureConfig.from_settings()
        from celery_parselog.redaction import DEFAULT_REDACT

        with override_settings(CELERY_PARSELOG_REDACT=[*DEFAULT_REDACT, "identifiers"]):
            self.identifiers = CaptureConfig.from_settings()
        self.receivers = CaptureReceivers(self.config)
        # The router the receivers enter each run into, with the routing handler.
        self.router = self.receivers.router
        self.selection = self.config.loggers
        app = Celery("bench-b1", set_as_current=False)

        @app.task(name=OTHER_TASK_NAME)
        def not_selected(data_file_id: int) -> None:
            """Stands for any task the selection leaves out."""

        self.task: Any = not_selected
        self.swapper = GlobalHandlerSwap(folder / "swap", self.formatter(DEFAULT_FORMAT))
        self.outputs: list[Path] = []

    def new_run(
        self,
        fmt: str,
        compressed: bool,
        spool_dir: Path,
        *,
        redacted: bool = False,
        identifiers: bool = False,
    ) -> RunCapture:
        """A run's capture made the way the ``task_prerun`` receiver makes it."""
        from celery_parselog.capture import RunCapture

        chosen = self.identifiers if identifiers else self.config if redacted else self.unredacted
        redactor = chosen.redactor
        return RunCapture(
            task_id=TASK_ID,
            task_name=TASK_NAME,
            attempt=1,
            levelno=self.config.levelno,
            formatter=self.formatter(fmt),
            spool_dir=spool_dir,
            compress_level=self.config.compress_level if compressed else 0,
            allows_logger=self.selection.allows,
            max_bytes=self.config.max_bytes,
            redact=redactor.redact if redactor else None,
        )

    def formatter(self, fmt: str) -> LineFormatter:
        from celery_parselog.formatting import build_formatter

        return build_formatter(fmt, task_id=TASK_ID, task_name=TASK_NAME)

    def _emit(self) -> None:
        emit_records(self.count, self.records, self.parsers)

    def _file_handler(self, fmt: str) -> logging.FileHandler:
        path = self.folder / f"floor-{time.monotonic_ns()}.log"
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(self.formatter(fmt))
        self.outputs.append(path)
        return handler

    @contextmanager
    def floor(self, fmt: str) -> Iterator[Run]:
        def run() -> None:
            root = logging.getLogger()
            handler = self._file_handler(fmt)
            root.addHandler(handler)
            try:
                self._emit()
            finally:
                root.removeHandler(handler)
                handler.close()

        yield run

    @contextmanager
    def capture(
        self, fmt: str, *, compressed: bool, redacted: bool = False, identifiers: bool = False
    ) -> Iterator[Run]:
        def run() -> None:
            capture = self.new_run(
                fmt, compressed, self.folder, redacted=redacted, identifiers=identifiers
            )
            token = self.router.enter(_Routed(capture))
            try:
                self._emit()
            finally:
                self.router.leave(token)
                capture.release()
            self.outputs.append(capture.path)

        yield run

    @contextmanager
    def unselected(self, *, connected: bool, busy: bool) -> Iterator[Run]:
        """The worker's own log file on root, and the task's signals sent around the body.

        With ``connected`` the package's receivers listen (and say no); with ``busy``
        another thread holds a captured run, so the routing handler is attached too.
        """
        from celery.signals import task_postrun, task_prerun

        task = self.task

        def run() -> None:
            root = logging.getLogger()
            handler = self._file_handler(self.text_format)
            root.addHandler(handler)
            try:
                task_prerun.send(
                    sender=task, task_id=TASK_ID, task=task, args=(FILE_ID,), kwargs={}
                )
                self._emit()
                task_postrun.send(
                    sender=task,
                    task_id=TASK_ID,
                    task=task,
                    args=(FILE_ID,),
                    kwargs={},
                    retval=None,
                    state="SUCCESS",
                )
            finally:
                root.removeHandler(handler)
                handler.close()

        if connected:
            self.receivers.connect()
        holder = _BusyRun(self) if busy else None
        try:
            yield run
        finally:
            if holder is not None:
                holder.stop()
            if connected:
                self.receivers.disconnect()

    @contextmanager
    def per_run_logger(self) -> Iterator[Run]:
        from benchmarks.baselines import per_run_logger

        def run() -> None:
            with per_run_logger(
                FILE_ID, self.folder / "perrun", self.formatter(self.text_format)
            ) as (run_logger, _key):
                emit_records(self.count, run_logger, run_logger)
            self.outputs.extend((self.folder / "perrun").iterdir())

        yield run

    @contextmanager
    def handler_swap(self) -> Iterator[Run]:
        def run() -> None:
            with self.swapper.run(FILE_ID):
                self._emit()
            self.outputs.append(self.swapper.path_for(FILE_ID))

        self.swapper.attach()
        try:
            yield run
        finally:
            self.swapper.detach()


class _Routed:
    """A bare capture as the router routes it (a task run's other parts are not measured)."""

    def __init__(self, capture: RunCapture) -> None:
        self.capture = capture
        self.token: Token[Any] | None = None

    def tick(self, now: float) -> None:
        self.capture.sync()


class _BusyRun:
    """A captured run held open in another thread, so the routing handler stays attached."""

    def __init__(self, bench: _Bench) -> None:
        self._ready = threading.Event()
        self._stop = threading.Event()
        router = bench.router
        capture = bench.new_run(bench.text_format, True, bench.folder / "busy")

        def hold() -> None:
            token = router.enter(_Routed(capture))
            self._ready.set()
            self._stop.wait()
            router.leave(token)
            capture.release()
            from celery_parselog.spool import remove_run_files

            remove_run_files(capture.path)

        self._thread = threading.Thread(target=hold, daemon=True)
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _timed(run: Run) -> tuple[float, float]:
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def child(params: dict[str, Any]) -> dict[str, Any]:
    count, repetitions = int(params["records"]), int(params["repetitions"])
    folder = Path(params["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    bench = _Bench(count, folder)
    from celery_parselog.conf import DEFAULT_FORMAT, JSON_FORMAT

    variants: dict[str, Callable[[], AbstractContextManager[Run]]] = {
        "floor_a": lambda: bench.floor(DEFAULT_FORMAT),
        "floor_b": lambda: bench.floor(DEFAULT_FORMAT),
        "floor_json": lambda: bench.floor(JSON_FORMAT),
        "plain": lambda: bench.capture(DEFAULT_FORMAT, compressed=False),
        "gzip": lambda: bench.capture(DEFAULT_FORMAT, compressed=True),
        "json": lambda: bench.capture(JSON_FORMAT, compressed=True),
        "redacted": lambda: bench.capture(DEFAULT_FORMAT, compressed=True, redacted=True),
        "identifiers": lambda: bench.capture(DEFAULT_FORMAT, compressed=True, identifiers=True),
        "no_package": lambda: bench.unselected(connected=False, busy=False),
        "unselected": lambda: bench.unselected(connected=True, busy=False),
        "unselected_busy": lambda: bench.unselected(connected=True, busy=True),
        "per_run_logger": bench.per_run_logger,
        "handler_swap": bench.handler_swap,
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    sizes: dict[str, int] = {}
    for repetition in range(repetitions):
        for name in rotated(list(variants), repetition):
            bench.outputs.clear()
            with variants[name]() as run_variant:
                seconds_cpu, seconds_wall = _timed(run_variant)
            cpu[name].append(seconds_cpu)
            wall[name].append(seconds_wall)
            if repetition == 0:
                # Every variant must have written every record, or its time means nothing.
                lines = sum(_count_lines(path) for path in bench.outputs)
                if lines != count:
                    raise RuntimeError(f"{name} wrote {lines} lines instead of {count}")
                sizes[name] = sum(path.stat().st_size for path in bench.outputs)
            for path in list(folder.rglob("*")):
                if path.is_file():
                    path.unlink()
    return {"cpu_seconds": cpu, "wall_seconds": wall, "bytes_written": sizes}


def _ratios(times: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per repetition: each variant over its reference measured in the same repetition."""
    floors = [
        geometric_mean([a, b]) for a, b in zip(times["floor_a"], times["floor_b"], strict=True)
    ]

    def over(name: str, reference: list[float]) -> list[float]:
        return [value / ref for value, ref in zip(times[name], reference, strict=True)]

    return {
        "plain": over("plain", floors),
        "gzip": over("gzip", floors),
        "json": over("json", times["floor_json"]),
        "redacted": over("redacted", floors),
        "identifiers": over("identifiers", floors),
        "unselected": over("unselected", times["no_package"]),
        "unselected_busy": over("unselected_busy", times["no_package"]),
        "noise": over("floor_b", times["floor_a"]),
        "per_run_logger": over("per_run_logger", floors),
        "handler_swap": over("handler_swap", floors),
    }


def run(ctx: Context) -> PartResult:
    sizes = ctx.sizes
    folder = ctx.work / "b1"
    raw = run_child(
        "benchmarks.b1_records",
        {
            "records": sizes.b1_records,
            "repetitions": sizes.b1_repetitions,
            "folder": str(folder / "files"),
        },
        ctx.base_env(folder),
        folder,
        timeout=3600,
    )
    ratios = _ratios(raw["cpu_seconds"])
    wall_ratios = _ratios(raw["wall_seconds"])
    raw.update(ratios_cpu=ratios, ratios_wall=wall_ratios)

    def outcome(row: str, key: str, limit: float | None) -> Outcome:
        values = ratios[key]
        value = median(values)
        low, high = quartiles(values)
        return Outcome(
            row,
            f"{value:.2f}",
            None if limit is None else value <= limit,
            value,
            f"IQR {low:.2f} to {high:.2f}; wall-clock median {median(wall_ratios[key]):.2f}",
        )

    outcomes = [
        outcome("b1.plain", "plain", 1.10),
        outcome("b1.gzip", "gzip", 1.30),
        outcome("b1.json", "json", 1.30),
        outcome("b1.redaction", "redacted", 1.50),
        outcome("b1.identifiers", "identifiers", 1.60),
        outcome("b1.unselected", "unselected", 1.05),
        outcome("b1.unselected_busy", "unselected_busy", None),
        outcome("b1.noise", "noise", None),
        outcome("b1.baseline_perrun", "per_run_logger", None),
        outcome("b1.baseline_swap", "handler_swap", None),
    ]
    method = (
        f"{sizes.b1_records:,} records per variant, {sizes.b1_repetitions} repetitions, "
        "variants interleaved in a rotated order. Floor = `logging.FileHandler` on root with "
        "the same formatter (the default format, or the JSON formatter for the JSON row), "
        "reference = geometric mean of the two floor runs of the same repetition. Capture "
        "uses the package's default settings, with redaction off except in the redaction "
        "row (the default set) and the identifiers row (the default set and `identifiers`); "
        "one record in fifty has an e-mail address in it. The "
        "not-selected rows compare against the same worker-log `FileHandler` with Celery's "
        "`task_prerun`/`task_postrun` sent and no receiver connected. The per-run logger "
        "baseline logs through its own logger, since module loggers never reach its file."
    )
    return PartResult(outcomes, raw, method)


if __name__ == "__main__":
    child_entry(child)
