"""Fixtures the unit tests share: a private Celery app, a spool folder, a root that logs all.

A module that needs more of one (its own tasks on the app, say) overrides the fixture
under the same name and asks for this one, so the common part is written once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.backends.base import BaseKeyValueStoreBackend

from celery_parselog.capture import RunCapture
from tests.unit.captures import MakeCapture, new_capture


@pytest.fixture
def app() -> Iterator[Celery]:
    """A Celery app of this test only, with an in-memory broker and a key-value result
    backend (the in-memory cache), never the current app."""
    celery_app = Celery("unit", set_as_current=False, broker="memory://", backend="cache+memory://")
    assert isinstance(celery_app.backend, BaseKeyValueStoreBackend)
    yield celery_app
    celery_app.close()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """A spool folder of this test only, already there and private (0700) as the worker's
    setup leaves it."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def make_capture(spool_dir: Path) -> Iterator[MakeCapture]:
    """Build captures with :func:`~tests.unit.captures.new_capture` in the test's spool
    folder; each is released after the test, so no lock or descriptor outlives it."""
    made: list[RunCapture] = []

    def make(**options: Any) -> RunCapture:
        capture = new_capture(spool_dir, **options)
        made.append(capture)
        return capture

    yield make
    for capture in made:
        capture.release()


@pytest.fixture
def root_logs_everything() -> None:
    """Let the root logger create DEBUG records, as a worker started with --loglevel=DEBUG.

    Modules whose tests read what a run captured use it for every test (``usefixtures``);
    the global-state fixture of tests/conftest.py puts the level back afterwards.
    """
    logging.getLogger().setLevel(logging.DEBUG)
