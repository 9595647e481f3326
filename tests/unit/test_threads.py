"""carry_context: a task's own threads log into its file only when their work is wrapped."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from celery_parselog import carry_context
from celery_parselog.capture import RunCapture
from celery_parselog.routing import CaptureRouter, LoggerSelection
from tests.unit.captures import new_capture
from tests.unit.routed import Routed

logger = logging.getLogger("tests.threads")


def make_run(spool_dir: Path, selection: LoggerSelection) -> RunCapture:
    """A plain capture of one line per message that keeps what ``selection`` allows."""
    return new_capture(spool_dir, fmt="%(message)s", allows_logger=selection.allows)


def work(label: str) -> str:
    logger.info("from %s", label)
    return label


def test_wrapped_thread_and_executor_work_is_captured_plain_threads_are_not(
    tmp_path: Path,
) -> None:
    """Wrapped work in a thread or executor lands in the run's log; unwrapped work does not."""
    logger.setLevel(logging.INFO)  # restored by the autouse fixture
    selection = LoggerSelection(["*"])
    router = CaptureRouter(selection)
    run = make_run(tmp_path, selection)
    token = router.enter(Routed(run))
    try:
        plain = threading.Thread(target=work, args=("a plain thread",))
        plain.start()
        plain.join()
        wrapped = threading.Thread(target=carry_context(work), args=("a wrapped thread",))
        wrapped.start()
        wrapped.join()
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(carry_context(work), [f"executor {n}" for n in range(8)]))
    finally:
        router.leave(token)
        run.release()
    assert results == [f"executor {n}" for n in range(8)]
    lines = run.path.read_text().splitlines()
    assert "from a plain thread" not in lines
    assert "from a wrapped thread" in lines
    assert sorted(line for line in lines if "executor" in line) == sorted(
        f"from executor {n}" for n in range(8)
    )


def test_carry_context_keeps_the_function_name_and_result() -> None:
    """The wrapper looks like the function it wraps and returns its result."""
    wrapped = carry_context(work)
    assert wrapped.__name__ == "work"
    assert wrapped("direct") == "direct"
