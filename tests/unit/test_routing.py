"""Unit tests for celery_parselog.routing: which records reach which run, and a clean detach."""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery.utils.log import LoggingProxy, get_task_logger

from celery_parselog.capture import RunCapture
from celery_parselog.routing import CaptureRouter, LoggerSelection, current_capture
from tests.unit.captures import MakeCapture, lines_of
from tests.unit.faults import file_size_limit, open_paths
from tests.unit.routed import Routed

MakeRun = Callable[..., RunCapture]
EVERY_LOGGER = LoggerSelection(["*"])


class ListHandler(logging.Handler):
    """A project's own handler: keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


pytestmark = pytest.mark.usefixtures("root_logs_everything")


@pytest.fixture
def make_run(make_capture: MakeCapture) -> MakeRun:
    """Build plain captures of a fresh task id that keep the loggers ``selection`` allows
    (every logger unless given)."""

    def make(
        selection: LoggerSelection | None = None, *, task_id: str | None = None, **options: Any
    ) -> RunCapture:
        allows = (selection or EVERY_LOGGER).allows
        return make_capture(task_id=task_id or str(uuid.uuid4()), allows_logger=allows, **options)

    return make


@pytest.fixture
def router() -> CaptureRouter:
    """A router for runs that keep every logger, as with the default LOGGERS=["*"]."""
    return CaptureRouter(EVERY_LOGGER)


@contextmanager
def running(router: CaptureRouter, run: RunCapture) -> Iterator[RunCapture]:
    """Route this context's records to ``run`` for the block, then leave and close it."""
    token = router.enter(Routed(run))
    try:
        yield run
    finally:
        router.leave(token)
        run.release()


@contextmanager
def running_selected(make_run: MakeRun, patterns: list[str]) -> Iterator[RunCapture]:
    """:func:`running` for a new run that keeps what LOGGERS=``patterns`` allows, routed by
    a router of that same selection."""
    selection = LoggerSelection(patterns)
    with running(CaptureRouter(selection), make_run(selection)) as run:
        yield run


def all_loggers() -> Iterable[logging.Logger]:
    """The root logger and every logger the logging manager knows."""
    yield logging.getLogger()
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            yield logger


def loggers_holding(handler: logging.Handler) -> list[str]:
    """Names of every logger that has ``handler`` attached."""
    return [logger.name for logger in all_loggers() if handler in logger.handlers]


# -- where records come from ---------------------------------------------------------


def test_propagating_module_logger_is_captured(make_run: MakeRun, router: CaptureRouter) -> None:
    """A record of an ordinary module logger (propagating to root) lands in the run."""
    module_logger = logging.getLogger("tests.routing.module")
    with running(router, make_run()) as run:
        module_logger.info("parsed %d rows", 10)
    assert lines_of(run) == ["INFO tests.routing.module: parsed 10 rows"]


def test_root_logger_records_are_captured(make_run: MakeRun, router: CaptureRouter) -> None:
    """``logging.info`` (the root logger) is captured under the name ``root``."""
    with running(router, make_run()) as run:
        logging.info("from the root logger")
    assert lines_of(run) == ["INFO root: from the root logger"]


def test_non_propagating_logger_from_dict_config_is_captured_and_keeps_its_handler(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """A ``propagate: False`` logger from dictConfig is captured; its own handler still gets it."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"own": {"()": ListHandler, "level": "DEBUG"}},
            "loggers": {
                "tests.routing.isolated": {
                    "handlers": ["own"],
                    "level": "DEBUG",
                    "propagate": False,
                }
            },
        }
    )
    isolated = logging.getLogger("tests.routing.isolated")
    assert isolated.propagate is False
    own = isolated.handlers[0]
    assert isinstance(own, ListHandler)
    with running(router, make_run()) as run:
        isolated.info("kept apart")
    assert lines_of(run) == ["INFO tests.routing.isolated: kept apart"]
    assert own.messages == ["kept apart"]
    assert isolated.handlers == [own]


def test_celery_task_logger_is_captured_when_celery_task_does_not_propagate(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """get_task_logger records are captured although ``celery.task`` stops propagation."""
    logging.getLogger("celery.task").propagate = False  # as the worker sets it up
    task_logger = get_task_logger("tests.routing.tasklog")
    with running(router, make_run()) as run:
        task_logger.warning("from the task %s", "body")
    assert lines_of(run) == ["WARNING tests.routing.tasklog: from the task body"]


def test_print_through_worker_logging_proxy_is_captured_as_whole_lines(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """print() to Celery's LoggingProxy stdout gives whole lines, not the proxy's fragments."""
    redirected = logging.getLogger("celery.redirected")
    worker_log = ListHandler()
    redirected.addHandler(worker_log)
    proxy = LoggingProxy(redirected, logging.WARNING)
    sys.stdout = proxy  # as a worker redirects stdout
    with running(router, make_run()) as run:
        print("rows", 10)
        print("second line")
    assert sys.stdout is proxy
    assert lines_of(run) == ["INFO stdout: rows 10", "INFO stdout: second line"]
    # The worker's own log still got what the proxy makes of the writes.
    assert "".join(worker_log.messages) == "rows 10second line"


def test_package_own_logger_is_never_captured(make_run: MakeRun) -> None:
    """Records of ``celery_parselog`` and its children stay out, even when selected by name."""
    with running_selected(make_run, ["*", "celery_parselog"]) as run:
        logging.getLogger("celery_parselog").error("a capture problem")
        logging.getLogger("celery_parselog.storage").warning("an upload problem")
        logging.getLogger("tests.routing.module").info("task text")
    assert lines_of(run) == ["INFO tests.routing.module: task text"]


def test_task_logging_call_does_not_raise_when_the_spool_disk_is_full(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """A logging call in the task never raises because the run's spool file cannot grow."""
    task_logger = logging.getLogger("tests.routing.fullspool")
    own = ListHandler()
    task_logger.addHandler(own)
    with running(router, make_run()), file_size_limit(64):
        task_logger.info("x" * 100)  # written in part, up to the limit
        task_logger.info("the task goes on logging")  # must not raise into the task
        print("and printing")
    assert own.messages == ["x" * 100, "the task goes on logging"]


# -- LoggerSelection -----------------------------------------------------------------


def test_selection_star_allows_every_logger_but_our_own() -> None:
    """``*`` (the default) allows every logger, root and stdout included, but celery_parselog."""
    selection = LoggerSelection(["*"])
    for name in ("root", "stdout", "stderr", "celery.task", "app.parsers.csv"):
        assert selection.allows(name), name
    assert not selection.allows("celery_parselog")
    assert not selection.allows("celery_parselog.storage")


def test_selection_names_a_logger_and_its_children_only() -> None:
    """A listed name allows that logger and its children, and nothing else."""
    selection = LoggerSelection(["e2e.x"])
    assert selection.allows("e2e.x")
    assert selection.allows("e2e.x.child")
    assert not selection.allows("e2e")
    assert not selection.allows("e2e.xy")
    assert not selection.allows("root")
    assert not selection.allows("stdout")


def test_selection_excludes_minus_names_and_their_children() -> None:
    """``-noisy`` leaves out ``noisy`` and ``noisy.*`` but not ``noisyish``."""
    selection = LoggerSelection(["*", "-noisy"])
    assert not selection.allows("noisy")
    assert not selection.allows("noisy.sub")
    assert selection.allows("noisyish")
    assert selection.allows("quiet")


def test_selection_caches_each_decision() -> None:
    """A logger name is matched against the entries once; later asks are a look-up."""
    selection = LoggerSelection(["*", "-noisy"])
    calls: list[str] = []
    original = LoggerSelection._within

    def counting(name: str, prefixes: tuple[str, ...]) -> bool:
        calls.append(name)
        return original(name, prefixes)

    selection._within = counting  # type: ignore[method-assign]
    assert selection.allows("app.module")
    assert not selection.allows("noisy.sub")
    first = len(calls)
    assert first > 0
    for _ in range(5):
        assert selection.allows("app.module")
        assert not selection.allows("noisy.sub")
    assert len(calls) == first


def test_narrowed_selection_captures_only_the_named_loggers(make_run: MakeRun) -> None:
    """With LOGGERS=["e2e.x"], only ``e2e.x`` and its children reach the run."""
    named = logging.getLogger("e2e.x")
    child = logging.getLogger("e2e.x.child")
    with running_selected(make_run, ["e2e.x"]) as run:
        named.info("named")
        child.info("child")
        logging.getLogger("e2e.other").info("other")
        logging.info("root")
        print("printed")
    assert lines_of(run) == ["INFO e2e.x: named", "INFO e2e.x.child: child"]


def test_excluded_logger_is_not_captured(make_run: MakeRun) -> None:
    """With LOGGERS=["*", "-noisy"], ``noisy`` records are left out, others kept."""
    with running_selected(make_run, ["*", "-noisy"]) as run:
        logging.getLogger("noisy.sub").info("noise")
        logging.getLogger("quiet").info("signal")
    assert lines_of(run) == ["INFO quiet: signal"]


# -- levels, late loggers, threads ---------------------------------------------------


def test_records_below_the_run_level_are_not_captured(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """At run level WARNING, DEBUG and INFO records are dropped, WARNING and ERROR kept."""
    module_logger = logging.getLogger("tests.routing.levels")
    with running(router, make_run(levelno=logging.WARNING)) as run:
        module_logger.debug("debug")
        module_logger.info("info")
        module_logger.warning("warning")
        module_logger.error("error")
    assert lines_of(run) == [
        "WARNING tests.routing.levels: warning",
        "ERROR tests.routing.levels: error",
    ]


def test_logger_made_non_propagating_during_a_run_is_covered_from_the_next_run(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """A ``propagate=False`` logger created after a run entered is captured by the next run."""
    with running(router, make_run()):
        late = logging.getLogger(f"tests.routing.late{uuid.uuid4().hex}")
        late.propagate = False
        late.addHandler(logging.NullHandler())
    with running(router, make_run()) as second:
        late.info("now covered")
    assert lines_of(second) == [f"INFO {late.name}: now covered"]


def test_run_entering_while_another_is_active_covers_loggers_made_meanwhile(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """Loggers are re-scanned at every run start, not only when the first run attaches."""
    entered, release = threading.Event(), threading.Event()
    other = make_run()

    def other_thread_run() -> None:
        token = router.enter(Routed(other))
        entered.set()
        release.wait(30)
        router.leave(token)

    thread = threading.Thread(target=other_thread_run)
    thread.start()
    try:
        assert entered.wait(30)
        late = logging.getLogger(f"tests.routing.meanwhile{uuid.uuid4().hex}")
        late.propagate = False
        with running(router, make_run()) as run:
            assert router.active_runs == 2
            late.info("covered although a run was already active")
    finally:
        release.set()
        thread.join(30)
    assert lines_of(run) == [f"INFO {late.name}: covered although a run was already active"]


def test_concurrent_runs_in_two_threads_never_mix(make_run: MakeRun, router: CaptureRouter) -> None:
    """Two threads, each with its own run, logging and printing at once, get only their lines."""
    runs = [make_run(task_id=f"thread-{n}") for n in range(2)]
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []
    shared_logger = logging.getLogger("tests.routing.shared")

    def work(number: int) -> None:
        try:
            token = router.enter(Routed(runs[number]))
            barrier.wait()  # both runs are active from here on
            assert router.active_runs == 2
            for line in range(300):
                shared_logger.info("thread %d record %d", number, line)
                print(f"thread {number} printed {line}")
            barrier.wait()  # neither run leaves before both finished writing
            router.leave(token)
            runs[number].release()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert router.active_runs == 0
    for number, run in enumerate(runs):
        lines = lines_of(run)
        assert len(lines) == 600
        expected = []
        for line in range(300):
            expected.append(f"INFO tests.routing.shared: thread {number} record {line}")
            expected.append(f"INFO stdout: thread {number} printed {line}")
        assert lines == expected


def test_records_of_a_thread_without_a_run_are_not_captured(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """While a run is active here, records logged in another thread do not reach it."""
    other_logger = logging.getLogger("tests.routing.elsewhere")
    with running(router, make_run()) as run:
        thread = threading.Thread(target=other_logger.warning, args=("not mine",))
        thread.start()
        thread.join(30)
        other_logger.warning("mine")
    assert lines_of(run) == ["WARNING tests.routing.elsewhere: mine"]


# -- attaching and detaching ---------------------------------------------------------


def test_after_the_last_run_leaves_nothing_of_the_capture_remains(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """After the last run: handler on no logger, original streams, no new logger, file closed."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"own": {"()": ListHandler}},
            "loggers": {"tests.routing.kept": {"handlers": ["own"], "propagate": False}},
        }
    )
    logging.getLogger("celery.task").propagate = False
    task_logger = get_task_logger("tests.routing.cleanup")
    stdout, stderr = sys.stdout, sys.stderr
    loggers_before = set(logging.Logger.manager.loggerDict)
    outer = make_run()
    inner = make_run()

    outer_token = router.enter(Routed(outer))
    assert sys.stdout is not stdout
    assert sys.stderr is not stderr
    assert "tests.routing.kept" in loggers_holding(router.handler)
    assert "celery.task" in loggers_holding(router.handler)
    inner_token = router.enter(Routed(inner))
    task_logger.info("inner")
    router.leave(inner_token)
    assert router.active_runs == 1
    assert router.handler in logging.getLogger().handlers  # still needed by the outer run
    logging.getLogger("tests.routing.kept").info("outer")
    router.leave(outer_token)
    outer.release()
    inner.release()

    assert router.active_runs == 0
    assert loggers_holding(router.handler) == []
    assert sys.stdout is stdout
    assert sys.stderr is stderr
    assert set(logging.Logger.manager.loggerDict) == loggers_before
    spool_files = {str(outer.path.resolve()), str(inner.path.resolve())}
    assert spool_files.isdisjoint(open_paths())
    assert lines_of(inner) == ["INFO tests.routing.cleanup: inner"]
    assert lines_of(outer) == ["INFO tests.routing.kept: outer"]


def test_gzip_spool_file_is_not_left_open_after_close(make_capture: MakeCapture) -> None:
    """Closing a compressed run releases its file descriptor, not only the gzip stream."""
    run = make_capture(task_id="gz", compress_level=6, allows_logger=LoggerSelection(["*"]).allows)
    assert str(run.path.resolve()) in open_paths()
    run.release()
    assert str(run.path.resolve()) not in open_paths()


def test_capture_with_default_selection_creates_no_logger(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """Entering and leaving runs with LOGGERS=["*"] adds no entry to the logging manager."""
    before = set(logging.Logger.manager.loggerDict)
    with running(router, make_run()):
        print("printed")
    assert set(logging.Logger.manager.loggerDict) == before


def test_capture_with_named_selection_creates_no_logger(make_run: MakeRun) -> None:
    """Entering a run with LOGGERS naming a logger nobody made does not create that logger."""
    name = f"tests.routing.unmade{uuid.uuid4().hex}.child"
    before = set(logging.Logger.manager.loggerDict)
    with running_selected(make_run, [name]):
        pass
    assert set(logging.Logger.manager.loggerDict) - before == set()


def test_same_record_reaching_the_handler_through_two_loggers_is_written_once(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """A record that meets the handler on its own logger and again on root is written once."""
    named = logging.getLogger("tests.routing.dup")
    named.propagate = False
    with running(router, make_run()) as run:
        # Found as non-propagating when the run started, then set to propagate: the
        # handler sits on the logger and on root, so each record meets it twice.
        named.propagate = True
        assert {"tests.routing.dup", "root"} <= set(loggers_holding(router.handler))
        named.info("once")
        named.info("once")  # an equal but new record is a line of its own
    assert lines_of(run) == ["INFO tests.routing.dup: once", "INFO tests.routing.dup: once"]
    assert run.counts == {"INFO": 2}


def test_active_runs_counts_entered_runs(make_run: MakeRun, router: CaptureRouter) -> None:
    """active_runs goes up on each enter and down on each leave, never below zero."""
    assert router.active_runs == 0
    first, second = make_run(), make_run()
    first_token = router.enter(Routed(first))
    assert router.active_runs == 1
    assert current_capture() is first
    second_token = router.enter(Routed(second))
    assert router.active_runs == 2
    assert current_capture() is second
    router.leave(second_token)
    assert router.active_runs == 1
    assert current_capture() is first
    router.leave(first_token)
    assert router.active_runs == 0
    assert current_capture() is None


def test_leave_with_a_token_of_another_context_clears_the_run(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """Leaving with a token made in another thread still ends routing here and detaches."""
    run = make_run()
    tokens: list[Any] = []
    thread = threading.Thread(target=lambda: tokens.append(router.enter(Routed(run))))
    thread.start()
    thread.join(30)
    router.leave(tokens[0])
    assert router.active_runs == 0
    assert current_capture() is None
    assert loggers_holding(router.handler) == []


def test_stream_tee_passes_attributes_and_text_through(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """While a run is active, stdout still behaves as the stream it wraps."""
    original = sys.stdout
    with running(router, make_run()) as run:
        assert sys.stdout.encoding == original.encoding
        sys.stdout.writelines(["a", "b\n"])
        sys.stdout.flush()
    assert lines_of(run) == ["INFO stdout: ab"]


def test_compressed_run_that_goes_quiet_is_synced_to_disk_by_the_watcher(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """A gzip run that logs once and then waits has that line on disk within a second."""
    run = make_run(compress_level=6)
    token = router.enter(Routed(run))
    try:
        logging.getLogger("tests.routing.quiet").warning("last words")
        deadline = time.monotonic() + 5
        decoded = b""
        while time.monotonic() < deadline and b"last words" not in decoded:
            time.sleep(0.1)
            decoded = zlib.decompressobj(wbits=31).decompress(run.path.read_bytes())
        assert b"WARNING tests.routing.quiet: last words" in decoded
        assert any(t.name == "celery-parselog-watcher" for t in threading.enumerate())
    finally:
        router.leave(token)
        run.release()
    # The watcher outlives the last run by its linger, then ends on its own.
    deadline = time.monotonic() + 5
    while any(t.name == "celery-parselog-watcher" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the watcher thread did not end"
        time.sleep(0.05)


def test_back_to_back_runs_share_one_watcher_and_close_stops_it(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """A run that starts right after another reuses its watcher; close() ends it at once."""

    def watchers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "celery-parselog-watcher"]

    first = make_run()
    router.leave(router.enter(Routed(first)))
    (watcher,) = watchers()
    second = make_run()
    router.leave(router.enter(Routed(second)))
    assert watchers() == [watcher]
    router.close()
    assert not watcher.is_alive()


def test_handler_comes_back_after_a_task_reconfigures_logging(
    make_run: MakeRun, router: CaptureRouter
) -> None:
    """A dictConfig inside a run drops the handler from root; it is back within seconds."""
    run = make_run()
    token = router.enter(Routed(run))
    try:
        logging.config.dictConfig(
            {"version": 1, "disable_existing_loggers": False, "root": {"handlers": []}}
        )
        assert router.handler not in logging.getLogger().handlers
        deadline = time.monotonic() + 5
        while router.handler not in logging.getLogger().handlers:
            assert time.monotonic() < deadline, "the handler was not put back"
            time.sleep(0.05)
        logging.getLogger("tests.routing.reconfigured").warning("after dictConfig")
    finally:
        router.leave(token)
    assert lines_of(run)[-1] == "WARNING tests.routing.reconfigured: after dictConfig"
    assert router.handler not in logging.getLogger().handlers
