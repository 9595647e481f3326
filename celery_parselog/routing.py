"""Getting each record to the run it belongs to, whatever logger it comes from.

One handler per process is attached to the root logger and to every logger that
does not propagate (``celery.task`` in a worker, a project's ``propagate: False``
loggers), so no logger has to be named. It is attached while at least one run is
active and removed when the last one ends. Each record goes to the run found in
the current context (a ``ContextVar`` set by the run's ``task_prerun``): it is per
thread, and per greenlet under gevent and eventlet, so tasks running side by side
in one process never see each other's records.

``sys.stdout`` and ``sys.stderr`` are wrapped for the same period, because the
worker's own redirection logs each ``write()`` separately and drops newlines, which
makes whole lines impossible to rebuild from log records.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from typing import Any, Protocol, TextIO

from celery_parselog.capture import RunCapture

__all__ = ["CaptureRouter", "LoggerSelection", "RoutedRun", "current_capture", "current_run"]

OWN_LOGGER = "celery_parselog"


class RoutedRun(Protocol):
    """What the router needs of a run: its capture, and a call from the watcher thread.

    :class:`celery_parselog.run.Run` is the real one; the protocol keeps this module
    below it, so routing never reaches up into the life of a run.
    """

    capture: RunCapture
    token: Token[Any] | None

    def tick(self, now: float) -> None: ...


_current_run: ContextVar[RoutedRun | None] = ContextVar("celery_parselog_run", default=None)


def current_run() -> RoutedRun | None:
    """The run being captured in this thread or greenlet, if any."""
    return _current_run.get()


def current_capture() -> RunCapture | None:
    """The capture of the run in this thread or greenlet, if any."""
    run = _current_run.get()
    return run.capture if run is not None else None


def _forget_runs_in_child() -> None:
    # A process forked by a task starts with the task's context: it must not
    # route anything into its parent's run (see capture.py).
    _current_run.set(None)


os.register_at_fork(after_in_child=_forget_runs_in_child)


class LoggerSelection:
    """Decides from ``CELERY_PARSELOG_LOGGERS`` whether a logger's records belong in the log.

    The package's own logger is always left out, so a problem reported while
    capturing can never feed back into the capture. Decisions are cached per
    logger name, which keeps the per-record cost to one dictionary look-up.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        entries = tuple(entries)
        self.everything = "*" in entries
        self.included = tuple(e for e in entries if e != "*" and not e.startswith("-"))
        self._excluded = (OWN_LOGGER, *(e[1:] for e in entries if e.startswith("-")))
        self._decided: dict[str, bool] = {}

    @staticmethod
    def _within(name: str, prefixes: tuple[str, ...]) -> bool:
        return any(
            name == prefix or name.startswith(prefix + ".") or prefix == "root"
            for prefix in prefixes
        )

    def allows(self, name: str) -> bool:
        decided = self._decided.get(name)
        if decided is None:
            if self._within(name, self._excluded):
                decided = False
            else:
                decided = self.everything or self._within(name, self.included)
            self._decided[name] = decided
        return decided


class _RoutingHandler(logging.Handler):
    """Sends a record to the current run, or drops it at once when there is none."""

    def __init__(self, selection: LoggerSelection) -> None:
        super().__init__()
        self._allows = selection.allows

    def handle(self, record: logging.LogRecord) -> bool:
        # Overridden to skip logging.Handler's lock: that lock is shared by every
        # thread, while each run has a lock of its own.
        routed = _current_run.get()
        if routed is None:
            return False
        run = routed.capture
        if (
            record.levelno < run.levelno
            or run.forwarding
            # The same record reaching this handler twice, through two loggers
            # that both carry it, is written once.
            or record is run.last_record
            or not self._allows(record.name)
        ):
            return False
        try:
            run.emit(record)
        except Exception:  # noqa: BLE001 - a logging call in the task must never raise
            return False
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


class _StreamTee:
    """Stands in for ``sys.stdout``/``sys.stderr``: copies text to the current run, passes it on."""

    def __init__(self, wrapped: TextIO, stream: str) -> None:
        self.wrapped = wrapped
        self._stream = stream

    def write(self, text: str) -> int:
        routed = _current_run.get()
        if routed is None or not isinstance(text, str):
            return self.wrapped.write(text)
        run = routed.capture
        # Printing must keep working whatever happens to the copy.
        with contextlib.suppress(Exception):
            run.write_stream(self._stream, text)
        run.forwarding = True
        try:
            return self.wrapped.write(text)
        finally:
            run.forwarding = False

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


class _Watcher(threading.Thread):
    """Looks after active runs from the side, while any is active.

    Five times a second it syncs compressed runs to disk, so a run that logged and
    then went quiet (waiting on I/O, or about to be killed) has its lines on disk.
    Once a second it puts the routing handler back where a logging reconfiguration
    in a task (``dictConfig`` replaces the root logger's handlers) took it away.
    Each run's own :meth:`~RoutedRun.tick` does the syncing and, when one is due, its
    checkpoint.

    It lives while runs are active and for ``LINGER`` seconds after the last one, so
    back-to-back tasks share one thread instead of paying for a new one each (about
    half a millisecond on a small machine); a worker that has been idle for that long
    has no thread of ours.
    """

    INTERVAL = 0.2
    REATTACH_EVERY = 5
    LINGER = 1.0

    def __init__(
        self,
        runs: list[RoutedRun],
        reattach: Callable[[], None],
        retire: Callable[[_Watcher], bool],
    ) -> None:
        super().__init__(name="celery-parselog-watcher", daemon=True)
        self._runs = runs
        self._reattach = reattach
        self._retire = retire
        self._stopped = threading.Event()

    def run(self) -> None:
        ticks = 0
        idle_since: float | None = None
        while not self._stopped.wait(self.INTERVAL):
            runs = list(self._runs)
            if not runs:
                now = time.monotonic()
                idle_since = idle_since or now
                if now - idle_since >= self.LINGER and self._retire(self):
                    return
                continue
            idle_since = None
            now = time.monotonic()
            for run in runs:
                with contextlib.suppress(Exception):
                    run.tick(now)
            ticks += 1
            if ticks % self.REATTACH_EVERY == 0:
                with contextlib.suppress(Exception):
                    self._reattach()

    def stop(self) -> None:
        self._stopped.set()
        if self is not threading.current_thread():
            self.join()


class CaptureRouter:
    """Attaches the routing handler and stream tees while runs are active in this process."""

    def __init__(self, selection: LoggerSelection) -> None:
        self._selection = selection
        self._handler = _RoutingHandler(selection)
        self._lock = threading.Lock()
        self._runs: list[RoutedRun] = []
        self._attached: list[logging.Logger] = []
        self._tees: list[tuple[str, _StreamTee]] = []
        self._watcher: _Watcher | None = None

    @property
    def handler(self) -> logging.Handler:
        return self._handler

    @property
    def active_runs(self) -> int:
        return len(self._runs)

    def enter(self, run: RoutedRun) -> Token[RoutedRun | None]:
        """Start routing this context's records to ``run``; pair with :meth:`leave`.

        The token is also kept on ``run.token``, so the run's owner can leave with it.
        """
        with self._lock:
            self._runs.append(run)
            self._attach_to_new_loggers()
            if len(self._runs) == 1:
                self._install_tees()
            if self._watcher is None:
                self._watcher = _Watcher(self._runs, self._reattach, self._retire)
                self._watcher.start()
        token = run.token = _current_run.set(run)
        return token

    def leave(self, token: Token[RoutedRun | None]) -> None:
        """Stop routing to the run ``token`` came from; detach everything after the last run."""
        run = token.var.get()
        try:
            _current_run.reset(token)
        except ValueError:
            # The token belongs to another context (prerun and postrun ran in
            # different ones); clearing is the best that can be done here.
            _current_run.set(None)
        with self._lock:
            if run in self._runs:
                self._runs.remove(run)
            elif self._runs:
                self._runs.pop()
            if not self._runs:
                self._detach_all()

    def close(self) -> None:
        """Stop the watcher now instead of after its linger (capture is being turned off)."""
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _retire(self, watcher: _Watcher) -> bool:
        """Let an idle watcher end, unless a run arrived meanwhile (then it carries on)."""
        with self._lock:
            if self._runs or self._watcher is not watcher:
                return self._watcher is not watcher
            self._watcher = None
            return True

    def _reattach(self) -> None:
        with self._lock:
            if self._runs:
                self._attach_to_new_loggers()

    def _targets(self) -> Iterable[logging.Logger]:
        # Existing loggers only: creating one here would leave it in logging's
        # registry for good. Propagating loggers reach the root handler anyway.
        yield logging.getLogger()
        for logger in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger) and not logger.propagate:
                yield logger

    def _attach_to_new_loggers(self) -> None:
        # Re-scanned at every run start, so loggers created (or set not to
        # propagate) since the previous run are covered too.
        for logger in self._targets():
            if self._handler not in logger.handlers:
                logger.addHandler(self._handler)
                self._attached.append(logger)

    def _install_tees(self) -> None:
        for stream in ("stdout", "stderr"):
            current = getattr(sys, stream)
            if not isinstance(current, _StreamTee):
                tee = _StreamTee(current, stream)
                setattr(sys, stream, tee)
                self._tees.append((stream, tee))

    def _detach_all(self) -> None:
        for logger in self._attached:
            logger.removeHandler(self._handler)
        self._attached.clear()
        for stream, tee in self._tees:
            # Put the original back only if nobody replaced our tee meanwhile;
            # otherwise the tee stays as a harmless pass-through.
            if getattr(sys, stream) is tee:
                setattr(sys, stream, tee.wrapped)
        self._tees.clear()
