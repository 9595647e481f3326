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
