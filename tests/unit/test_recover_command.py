"""Unit tests for ``manage.py parselog_recover``: progress, summary and failures, on real files."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import Storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from celery_parselog.capture import RunCapture
from celery_parselog.spool import manifest_path, remove_run_files, write_manifest
from tests.notes import INCOMPLETE_TRAILER
from tests.unit.captures import new_capture, record
from tests.unit.runs import stored_lines

STATICFILES = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
LINE = "INFO tests.command: parsing file 7"


class FailingStorage(Storage):
    """A storage whose every save fails with OSError."""

    def exists(self, name: str) -> bool:
        return False

    def delete(self, name: str) -> None:
        """Nothing to delete: nothing was ever saved."""

    def _save(self, name: str, content: Any) -> str:
        raise OSError("the disk is on fire")


@pytest.fixture(autouse=True)
def _keys_under_command_tests() -> Iterator[None]:
    """Keys of this module's runs live under ``command-tests/``: recovery keeps that prefix."""
    with override_settings(CELERY_PARSELOG_KEY="command-tests/{task_id}-{attempt}.log"):
        yield


@pytest.fixture(autouse=True)
def _quick_uploads() -> Iterator[None]:
    """One upload attempt, no backoff, so failing tests do not wait."""
    with override_settings(CELERY_PARSELOG_UPLOAD_ATTEMPTS=1, CELERY_PARSELOG_UPLOAD_BACKOFF=0):
        yield


def orphan(spool_dir: Path, *, live: bool = False) -> tuple[RunCapture, str]:
    """A gzip run with a start manifest and one line, released (an orphan) unless ``live``.

    Returns (the capture, the key its manifest plans).
    """
    task_id = str(uuid.uuid4())
    key = f"command-tests/{task_id}-1.log.gz"
    capture = new_capture(spool_dir, task_id=task_id, levelno=logging.DEBUG, compress_level=6)
    write_manifest(
        capture.path,
        {
            "status": "pending",
            "storage": "default",
            "key": key,
            "attempt": 1,
            "task_id": task_id,
            "started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        },
    )
    capture.emit(record("parsing file 7", name="tests.command"))
    if not live:
        capture.release()
    return capture, key


def run_command(*args: str) -> list[str]:
    """Run parselog_recover with ``args``; return its output lines."""
    out = StringIO()
    call_command("parselog_recover", *args, stdout=out)
    return out.getvalue().splitlines()


def test_command_stores_the_orphan_and_prints_progress_and_summary(spool_dir: Path) -> None:
    """One orphan: a "[1/1] <name>: stored <key>" line, then "Stored 1, ..."; the log is stored."""
    capture, key = orphan(spool_dir)
    lines = run_command("--spool-dir", str(spool_dir))
    assert lines == [
        f"[1/1] {capture.path.name}: stored {key}",
        "Stored 1, left 0 of running tasks alone, removed 0 empty files, 0 failed.",
    ]
    assert stored_lines(key) == [LINE, INCOMPLETE_TRAILER]
    assert list(spool_dir.iterdir()) == []


def test_command_sweeps_the_configured_spool_folder_by_default(spool_dir: Path) -> None:
    """Without --spool-dir the command sweeps CELERY_PARSELOG_SPOOL_DIR."""
    _, key = orphan(spool_dir)
    with override_settings(CELERY_PARSELOG_SPOOL_DIR=str(spool_dir)):
        lines = run_command()
    assert lines[-1].startswith("Stored 1, ")
    assert stored_lines(key) == [LINE, INCOMPLETE_TRAILER]


def test_command_leaves_live_runs_and_counts_them(spool_dir: Path) -> None:
    """A locked (live) run is left alone and counted in the summary; empty old files removed."""
    live, _ = orphan(spool_dir, live=True)
    empty = spool_dir / "abc-1-xyz.log"
    empty.touch()
    long_ago = time.time() - 3600
    os.utime(empty, (long_ago, long_ago))
    try:
        lines = run_command("--spool-dir", str(spool_dir))
        assert sorted(spool_dir.iterdir()) == [live.path, manifest_path(live.path)]
    finally:
        remove_run_files(live.path)
        live.release()
    assert lines == [
        f"[1/2] {empty.name}: removed",  # the oldest file comes first
        f"[2/2] {live.path.name}: live",
        "Stored 0, left 1 of running tasks alone, removed 1 empty files, 0 failed.",
    ]


def test_command_with_verbosity_0_prints_only_the_summary(spool_dir: Path) -> None:
    """--verbosity 0 prints no progress lines, only the summary."""
    orphan(spool_dir)
    assert run_command("--spool-dir", str(spool_dir), "--verbosity", "0") == [
        "Stored 1, left 0 of running tasks alone, removed 0 empty files, 0 failed."
    ]


def test_command_fails_with_advice_when_the_storage_fails(spool_dir: Path) -> None:
    """A failing storage: CommandError with advice, a summary counting it, the orphan kept."""
    capture, key = orphan(spool_dir)
    failing = {"default": {"BACKEND": f"{__name__}.FailingStorage"}, "staticfiles": STATICFILES}
    out = StringIO()
    with override_settings(STORAGES=failing), pytest.raises(CommandError) as raised:
        call_command("parselog_recover", "--spool-dir", str(spool_dir), stdout=out)
    message = str(raised.value)
    assert "1 logs could not be stored" in message
    assert "storage is reachable" in message
    assert capture.path.name in message
    assert "OSError: the disk is on fire" in message
    assert out.getvalue().splitlines()[-1] == (
        "Stored 0, left 0 of running tasks alone, removed 0 empty files, 1 failed."
    )
    assert sorted(spool_dir.iterdir()) == [capture.path, manifest_path(capture.path)]
    assert run_command("--spool-dir", str(spool_dir))[-1].startswith("Stored 1, ")
    assert stored_lines(key) == [LINE, INCOMPLETE_TRAILER]


def test_command_refuses_a_missing_spool_folder(tmp_path: Path) -> None:
    """--spool-dir naming a folder that does not exist raises CommandError naming it."""
    missing = tmp_path / "no-such-spool"
    with pytest.raises(CommandError, match="does not exist") as raised:
        run_command("--spool-dir", str(missing))
    assert str(missing) in str(raised.value)
    assert not missing.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="owning files as another user needs root")
def test_root_refuses_another_users_folder_unless_told() -> None:
    """Root sweeping a worker's folder (another uid) is refused, naming the owner; with
    --owner-ok it sweeps as that user, and what it stores belongs to that user."""
    nobody = 65534
    tmp_path = Path(tempfile.mkdtemp(prefix="parselog-owner-"))
    tmp_path.chmod(0o755)  # the worker's user must reach its folder, as in /tmp
    media = tmp_path / "media"
    media.mkdir()
    media.chmod(0o777)
    spool_dir = tmp_path / "worker-spool"
    spool_dir.mkdir(mode=0o700)
    capture, key = orphan(spool_dir)
    for path in [spool_dir, *spool_dir.iterdir()]:
        os.chown(path, nobody, nobody)
    storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(media)},
    }
    stores = {"default": storage, "staticfiles": storage}
    with override_settings(STORAGES=stores, MEDIA_ROOT=str(media)):
        with pytest.raises(CommandError, match=r"belongs to uid 65534.*--owner-ok"):
            run_command("--spool-dir", str(spool_dir))
        assert capture.path.exists()
        run_command("--spool-dir", str(spool_dir), "--owner-ok")
        assert stored_lines(key)[0].endswith("parsing file 7")
        assert (media / key).stat().st_uid == nobody
    assert os.geteuid() == 0
    assert list(spool_dir.iterdir()) == []
    shutil.rmtree(tmp_path)
