"""Shared fixtures: every test starts and ends with logging, streams and capture as they were."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from celery_parselog import worker


@pytest.fixture(autouse=True)
def _restore_global_state() -> Iterator[None]:
    """Put back every logger's handlers, level and propagation, the std streams, and capture."""
    manager = logging.Logger.manager
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate, lg.disabled)
        for name, lg in [("", logging.getLogger()), *manager.loggerDict.items()]
        if isinstance(lg, logging.Logger)
    }
    stdout, stderr = sys.stdout, sys.stderr
    yield
    worker.disable()
    sys.stdout, sys.stderr = stdout, stderr
    for name, lg in list(manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and name not in saved:
            lg.handlers.clear()  # loggers a test created keep nothing it attached
    for name, (handlers, level, propagate, disabled) in saved.items():
        lg = logging.getLogger(name or None)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
        lg.disabled = disabled


# -- End-to-end tests must run where they are required ---------------------------

_E2E_DIR = "e2e"
_e2e_counts = pytest.StashKey[dict[str, int]]()
_skipped_e2e: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-e2e",
        action="store_true",
        help="Fail the run unless end-to-end tests were collected and none was skipped.",
    )
    parser.addoption(
        "--reliability-report",
        metavar="PATH",
        help="Write the table of faults tried end to end (state kept, logs lost) to PATH.",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _E2E_DIR in item.path.relative_to(config.rootpath).parts:
            item.add_marker(pytest.mark.e2e)
    config.stash[_e2e_counts] = {"collected": sum(1 for i in items if i.get_closest_marker("e2e"))}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "e2e" in report.keywords and report.skipped:
        _skipped_e2e.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not config.getoption("--require-e2e"):
        return
    collected = config.stash.get(_e2e_counts, {}).get("collected", 0)
    problem = None
    if collected == 0:
        problem = "no end-to-end test was collected"
    elif _skipped_e2e:
        problem = f"{len(_skipped_e2e)} end-to-end tests were skipped: {', '.join(_skipped_e2e)}"
    if problem:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"--require-e2e: {problem}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
