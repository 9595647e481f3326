"""Unit tests for celery_parselog.recovery (and the worker's sweeper hooks) on real spool files.

Orphans are made the way the package makes them: a real RunCapture and its manifest,
released without being stored (a failed upload), or written by a forked child that
exits without finishing (a killed child, whose lock the kernel drops).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_failure, task_revoked
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.test import override_settings

from celery_parselog import recovery, worker
from celery_parselog.capture import RunCapture
from celery_parselog.formatting import INTERRUPTED_NOTE
from celery_parselog.receivers import CaptureConfig
from celery_parselog.recovery import (
    RecoveryReport,
    RecoverySweeper,
    recover_spool,
)
from celery_parselog.spool import (
    lock_exclusive,
    manifest_path,
    read_manifest,
    remove_run_files,
    write_manifest,
)
from tests.notes import INCOMPLETE_TRAILER, INTERRUPTED_TRAILER
from tests.unit import captures
from tests.unit.faults import is_open
from tests.unit.routed import read_wire
from tests.unit.runs import new_id, stored_bytes, stored_lines

STATICFILES = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
# Older than recovery's grace period for spool files without a manifest (300 s).
LONG_AGO = time.time() - 3600
DEADLINE = 15.0

LINES = ["INFO tests.recovery: parsing file 7", "WARNING tests.recovery: one bad row"]


class FailingStorage(Storage):
    """A storage whose every save fails with OSError, counting the attempts."""

    saves: ClassVar[int] = 0

    def exists(self, name: str) -> bool:
        return False

    def delete(self, name: str) -> None:
        """Nothing to delete: nothing was ever saved."""

    def _save(self, name: str, content: Any) -> str:
        FailingStorage.saves += 1
        raise OSError("the disk is on fire")


class CountingStorage(FileSystemStorage):
    """A file system storage that records every saved name (slowly, to make sweeps overlap)."""

    saved: ClassVar[list[str]] = []
    modes: ClassVar[list[int]] = []
    delay: ClassVar[float] = 0.0
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def _save(self, name: str, content: Any) -> str:
        source = getattr(content.file, "name", None)
        if isinstance(source, str):
            with CountingStorage._lock:
                CountingStorage.modes.append(Path(source).stat().st_mode & 0o777)
        time.sleep(CountingStorage.delay)
        stored: str = super()._save(name, content)  # type: ignore[misc]
        with CountingStorage._lock:
            CountingStorage.saved.append(stored)
        return stored

    @classmethod
    def reset(cls, delay: float = 0.0) -> None:
        cls.saved = []
        cls.modes = []
        cls.delay = delay


@pytest.fixture(autouse=True)
def _keys_under_recovery_tests() -> Iterator[None]:
    """Keys of this module's runs live under ``recovery-tests/``: recovery keeps that prefix."""
    with override_settings(CELERY_PARSELOG_KEY="recovery-tests/{task_id}-{attempt}.log"):
        yield


@pytest.fixture
def counting_storage(tmp_path: Path) -> Iterator[type[CountingStorage]]:
    """Make ``default`` a CountingStorage under this test's folder."""
    CountingStorage.reset()
    setting = {
        "default": {
            "BACKEND": f"{__name__}.CountingStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
        "staticfiles": STATICFILES,
    }
    with override_settings(STORAGES=setting):
        yield CountingStorage


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    """A record of logger ``tests.recovery``."""
    return captures.record(message, level=level, name="tests.recovery")


def emit_lines(capture: RunCapture, lines: list[str]) -> None:
    """Emit records that format to ``lines`` (``LEVEL tests.recovery: message``)."""
    for line in lines:
        levelname, _, message = line.partition(" tests.recovery: ")
        capture.emit(record(message, logging.getLevelName(levelname)))


def new_capture(spool_dir: Path, task_id: str, *, compressed: bool, attempt: int = 1) -> RunCapture:
    """A capture of DEBUG and up as the receivers make it; it holds its file's lock from now on."""
    return captures.new_capture(
        spool_dir,
        task_id=task_id,
        attempt=attempt,
        levelno=logging.DEBUG,
        compress_level=6 if compressed else 0,
    )


def key_for(task_id: str, compressed: bool, attempt: int = 1) -> str:
    """The key a test's manifest plans for a run."""
    return f"recovery-tests/{task_id}-{attempt}.log" + (".gz" if compressed else "")


def start_fields(task_id: str, key: str, attempt: int = 1) -> dict[str, Any]:
    """The manifest a run writes when it starts, as the receivers write it."""
    return {
        "status": "pending",
        "uri": "",
        "storage": "default",
        "key": key,
        "attempt": attempt,
        "task_id": task_id,
        "started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "hostname": "worker-1",
        "pid": 4242,
    }


def finished_fields(task_id: str, key: str, path: Path, *, complete: bool = True) -> dict[str, Any]:
    """The manifest a run leaves when its upload failed, as the receivers write it."""
    fields = {
        **start_fields(task_id, key),
        "status": "failed",
        "finished": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "counts": {"INFO": 1, "WARNING": 1},
        "task_state": "SUCCESS" if complete else None,
        "complete": complete,
        "error": "could not store it after 3 attempts: OSError: the disk is on fire",
        "spool": str(path),
    }
    if not complete:
        fields["incomplete_reason"] = "run interrupted"
    return fields


def failed_upload_orphan(
    spool_dir: Path, *, compressed: bool, lines: list[str] = LINES, complete: bool = True
) -> tuple[Path, str, str]:
    """A finished run whose upload failed: its file stays, unlocked, with a "failed" manifest.

    Returns (spool file, planned key, task id).
    """
    task_id = new_id()
    key = key_for(task_id, compressed)
    capture = new_capture(spool_dir, task_id, compressed=compressed)
    write_manifest(capture.path, start_fields(task_id, key))
    emit_lines(capture, lines)
    if not complete:
        capture.write_note(INTERRUPTED_NOTE)
    capture.finish()
    write_manifest(capture.path, finished_fields(task_id, key, capture.path, complete=complete))
    capture.release()
    return capture.path, key, task_id


def run_in_killed_child(body: Callable[[], RunCapture]) -> None:
    """Run ``body`` in a forked child that then dies without finishing or cleaning up.

    The capture ``body`` returns is kept referenced until the child dies: collecting it
    would close its gzip stream, which a killed process never does.
    """

    def child() -> None:
        try:
            capture = body()
        except BaseException:  # noqa: BLE001 - reported through the exit code
            os._exit(3)
        assert not capture.closed
        os._exit(0)  # like SIGKILL: no finally, no flush, no atexit; the kernel drops the lock

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(DEADLINE)
    assert process.exitcode == 0, f"the child failed (exit code {process.exitcode})"


def spool_log(spool_dir: Path, task_id: str) -> Path:
    """The one spool log file (not its manifest) of ``task_id``."""
    found = [p for p in spool_dir.glob(f"{task_id}-*") if not p.name.endswith(".json")]
    assert len(found) == 1, found
    return found[0]


def killed_orphan(
    spool_dir: Path,
    *,
    compressed: bool,
    synced: list[str] = LINES,
    after_sync: list[str] | None = None,
) -> tuple[Path, str, str]:
    """A run whose child was killed mid-run: start manifest, ``synced`` lines on disk, no end.

    ``after_sync`` lines are emitted after the last sync, then the child dies.
    Returns (spool file, planned key, task id).
    """
    task_id = new_id()
    key = key_for(task_id, compressed)

    def body() -> RunCapture:
        capture = new_capture(spool_dir, task_id, compressed=compressed)
        write_manifest(capture.path, start_fields(task_id, key))
        emit_lines(capture, synced)
        capture.sync()  # the router's flusher does this five times a second
        emit_lines(capture, after_sync or [])
        return capture

    run_in_killed_child(body)
    return spool_log(spool_dir, task_id), key, task_id


def unnamed_orphan(
    spool_dir: Path, *, compressed: bool, lines: list[str], attempt: int = 1, age: float = 3600
) -> tuple[Path, str]:
    """A spool file whose run died before writing a manifest, last modified ``age`` seconds ago.

    Returns (spool file, task id).
    """
    task_id = new_id()
    capture = new_capture(spool_dir, task_id, compressed=compressed, attempt=attempt)
    emit_lines(capture, lines)
    capture.release()
    moment = time.time() - age
    os.utime(capture.path, (moment, moment))
    return capture.path, task_id


def sweep(spool_dir: Path, app: Celery | None = None, **options: Any) -> RecoveryReport:
    """One sweep with the default storage, one attempt, no backoff."""
    values: dict[str, Any] = {"storage": "default", "attempts": 1, "backoff": 0.0}
    values.update(options)
    return recover_spool(spool_dir, backend=app.backend if app else None, **values)


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds passed; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


# -- unfinished runs (killed children) -------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_killed_run_is_stored_under_its_key_with_the_trailer(
    spool_dir: Path, app: Celery, compressed: bool
) -> None:
    """A run killed mid-run is stored under its manifest's key: its lines, then the trailer."""
    _, key, _ = killed_orphan(spool_dir, compressed=compressed)
    report = sweep(spool_dir, app)
    assert report.stored == [key]
    assert report.ok
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]


def swept_entry(
    spool_dir: Path, app: Celery, task_id: str, key: str
) -> tuple[dict[str, Any], bytes]:
    """Sweep the spool once; the run's published entry, which must say stored, and the bytes
    of the object stored under ``key``."""
    sweep(spool_dir, app)
    entry = read_wire(app.backend, task_id)
    assert entry is not None
    assert entry["status"] == "stored"
    return entry, stored_bytes(key)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_killed_run_entry_says_incomplete_and_matches_the_object(
    spool_dir: Path, app: Celery, compressed: bool
) -> None:
    """The published entry: stored, complete False, "worker lost", size and digest of the object."""
    path, key, task_id = killed_orphan(spool_dir, compressed=compressed)
    manifest = read_manifest(manifest_path(path))
    entry, data = swept_entry(spool_dir, app, task_id, key)
    assert entry["complete"] is False
    assert entry["incomplete_reason"] == "worker lost"
    assert entry["key"] == key
    assert entry["uri"] == Path(storages["default"].path(key)).resolve().as_uri()
    assert entry["bytes"] == len(data)
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["task_id"] == task_id
    assert entry["attempt"] == 1
    assert entry["started"] == manifest["started"]
    assert "recovered" in entry
    for local in ("version", "hostname", "pid", "spool", "error"):
        assert local not in entry


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_killed_run_leaves_nothing_in_the_spool_folder(
    spool_dir: Path, app: Celery, compressed: bool
) -> None:
    """Once stored, the orphan and its manifest are removed, and no working copy is left."""
    path, _, _ = killed_orphan(spool_dir, compressed=compressed)
    assert sorted(spool_dir.iterdir()) == [path, manifest_path(path)]
    sweep(spool_dir, app)
    assert list(spool_dir.iterdir()) == []


def test_killed_gzip_run_keeps_what_was_synced(spool_dir: Path, app: Celery) -> None:
    """A gzip run killed mid-run (cut-short stream) keeps its synced lines, then the trailer."""
    path, key, _ = killed_orphan(
        spool_dir, compressed=True, after_sync=["INFO tests.recovery: never synced"]
    )
    with pytest.raises(EOFError):  # the spool file really is a cut-short gzip stream
        gzip.decompress(path.read_bytes())
    report = sweep(spool_dir, app)
    assert report.stored == [key]
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]
    gzip.decompress(stored_bytes(key))  # the stored object is a complete gzip stream


def test_gzip_log_with_a_damaged_tail_keeps_the_lines_before_the_damage(
    spool_dir: Path, app: Celery
) -> None:
    """A gzip log with a zero-filled tail (as a crash leaves) keeps the lines before the damage."""
    path, key, _ = killed_orphan(spool_dir, compressed=True)
    with path.open("ab") as stream:
        stream.write(bytes(4096))
    report = sweep(spool_dir, app)
    assert report.stored == [key]
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]


def test_gzip_run_killed_before_its_first_sync_is_stored_as_the_trailer(
    spool_dir: Path, app: Celery
) -> None:
    """A gzip run killed before anything reached its file is stored as the trailer alone."""
    path, key, _ = killed_orphan(spool_dir, compressed=True, synced=[])
    assert path.stat().st_size == 0
    report = sweep(spool_dir, app)
    assert report.stored == [key]
    assert stored_lines(key) == [INCOMPLETE_TRAILER]


def test_trailer_starts_on_a_line_of_its_own_after_a_cut_line(spool_dir: Path, app: Celery) -> None:
    """A plain log cut mid-line keeps the cut line and gets the trailer on a line of its own."""
    task_id = new_id()
    key = key_for(task_id, False)
    first = "INFO tests.recovery: first line"

    def body() -> RunCapture:
        capture = new_capture(spool_dir, task_id, compressed=False)
        write_manifest(capture.path, start_fields(task_id, key))
        capture.emit(record("first line"))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = capture.path.stat().st_size
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))
        capture.emit(record("a line the full disk cuts short"))
        return capture

    run_in_killed_child(body)
    path = spool_log(spool_dir, task_id)
    assert not path.read_bytes().endswith(b"\n")
    report = sweep(spool_dir, app)
    assert report.stored == [key]
    assert stored_lines(key) == [first, "INFO tests", INCOMPLETE_TRAILER]


# -- finished runs whose upload failed ------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_finished_run_is_stored_as_it_is(spool_dir: Path, app: Celery, compressed: bool) -> None:
    """A finished run whose upload failed is stored byte for byte, without a trailer."""
    path, key, _ = failed_upload_orphan(spool_dir, compressed=compressed)
    original = path.read_bytes()
    report = sweep(spool_dir, app)
    assert report.stored == [key]
    assert stored_bytes(key) == original
    assert stored_lines(key) == LINES
    assert list(spool_dir.iterdir()) == []


@pytest.mark.parametrize("same", [True, False], ids=["its-own-log", "another-object"])
def test_finished_run_killed_after_its_upload_stays_under_its_key(
    spool_dir: Path, app: Celery, same: bool
) -> None:
    """A finished run killed after its upload, before its files went (its entry and row are
    written after the upload), is stored again under its own key, not beside itself;
    another object under that key is still kept, and the log goes beside it."""
    path, key, _ = failed_upload_orphan(spool_dir, compressed=True)
    original = path.read_bytes()
    storages["default"].save(key, io.BytesIO(original if same else b"another object\n"))
    report = sweep(spool_dir, app)
    assert len(report.stored) == 1
    if same:
        assert report.stored == [key]
        assert stored_bytes(key) == original
    else:
        assert "-recovered-" in report.stored[0]
        assert stored_bytes(key) == b"another object\n"
        assert stored_bytes(report.stored[0]) == original
    assert list(spool_dir.iterdir()) == []


def test_finished_run_entry_says_complete(spool_dir: Path, app: Celery) -> None:
    """A recovered finished run's entry: stored, complete, counts kept, error/spool dropped."""
    _, key, task_id = failed_upload_orphan(spool_dir, compressed=True)
    entry, data = swept_entry(spool_dir, app, task_id, key)
    assert entry["complete"] is True
    assert "incomplete_reason" not in entry
    assert entry["counts"] == {"INFO": 1, "WARNING": 1}
    assert entry["task_state"] == "SUCCESS"
    assert "finished" in entry
    assert entry["bytes"] == len(data)
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    for local in ("version", "hostname", "pid", "spool", "error"):
        assert local not in entry


def test_finished_but_interrupted_run_stays_incomplete(spool_dir: Path, app: Celery) -> None:
    """A finished, interrupted run keeps complete False and its reason; no second trailer."""
    _, key, task_id = failed_upload_orphan(spool_dir, compressed=False, complete=False)
    sweep(spool_dir, app)
    assert stored_lines(key) == [*LINES, INTERRUPTED_TRAILER]
    entry = read_wire(app.backend, task_id)
    assert entry is not None
    assert entry["complete"] is False
    assert entry["incomplete_reason"] == "run interrupted"


# -- live runs ----------------------------------------------------------------------


def test_live_run_is_left_alone_until_it_lets_go(spool_dir: Path, app: Celery) -> None:
    """A locked run is left alone (live) even once finished; after release() a sweep stores it."""
    task_id = new_id()
    key = key_for(task_id, True)
    capture = new_capture(spool_dir, task_id, compressed=True)
    try:
        write_manifest(capture.path, start_fields(task_id, key))
        emit_lines(capture, LINES[:1])
        capture.sync()
        report = sweep(spool_dir, app)
        assert (report.stored, report.live, report.removed, report.failed) == ([], 1, 0, [])
        assert sorted(spool_dir.iterdir()) == [capture.path, manifest_path(capture.path)]
        assert not storages["default"].exists(key)
        emit_lines(capture, LINES[1:])  # the run goes on writing, undisturbed
        capture.finish()
        write_manifest(capture.path, finished_fields(task_id, key, capture.path))
        assert sweep(spool_dir, app).live == 1  # finished, but still locked: being stored
        assert capture.path.exists()
    finally:
        capture.release()
    report = sweep(spool_dir, app)
    assert (report.stored, report.live) == ([key], 0)
    assert stored_lines(key) == LINES


def test_live_run_in_another_process_is_left_alone(spool_dir: Path, app: Celery) -> None:
    """A file locked by a live child process is counted live, and stored once that child dies."""
    task_id = new_id()
    key = key_for(task_id, False)
    context = multiprocessing.get_context("fork")
    ready, finish = context.Event(), context.Event()

    def child() -> None:
        capture = new_capture(spool_dir, task_id, compressed=False)
        write_manifest(capture.path, start_fields(task_id, key))
        emit_lines(capture, LINES)
        ready.set()
        finish.wait(DEADLINE)
        os._exit(0)

    process = context.Process(target=child)
    process.start()
    try:
        assert ready.wait(DEADLINE)
        report = sweep(spool_dir, app)
        assert (report.stored, report.live) == ([], 1)
        assert spool_log(spool_dir, task_id).exists()
    finally:
        finish.set()
        process.join(DEADLINE)
    report = sweep(spool_dir, app)
    assert (report.stored, report.live) == ([key], 0)
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]


def test_file_its_run_removed_while_recovery_opened_it_is_gone(
    spool_dir: Path, app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file its run removed between recovery's open and lock is 'gone': not stored, not failed."""
    task_id = new_id()
    key = key_for(task_id, False)
    capture = new_capture(spool_dir, task_id, compressed=False)
    write_manifest(capture.path, start_fields(task_id, key))
    emit_lines(capture, LINES)

    def lock_once_the_run_let_go(descriptor: int, *, wait: bool) -> bool:
        remove_run_files(capture.path)
        capture.release()  # the run stored its log: file and manifest removed, lock dropped
        return lock_exclusive(descriptor, wait=wait)

    monkeypatch.setattr(recovery, "lock_exclusive", lock_once_the_run_let_go)
    outcomes: list[str] = []
    report = sweep(spool_dir, app, progress=lambda n, t, outcome: outcomes.append(outcome))
    assert outcomes == [f"{capture.path.name}: gone"]
    assert (report.stored, report.live, report.removed, report.failed) == ([], 0, 0, [])
    assert not storages["default"].exists(key)


# -- idempotence --------------------------------------------------------------------


def test_second_sweep_stores_and_reports_nothing(spool_dir: Path, app: Celery) -> None:
    """After a sweep stored everything, another stores nothing and reports nothing."""
    _, killed_key, killed_id = killed_orphan(spool_dir, compressed=True)
    _, failed_key, failed_id = failed_upload_orphan(spool_dir, compressed=False)
    first = sweep(spool_dir, app)
    assert sorted(first.stored) == sorted([killed_key, failed_key])
    second = sweep(spool_dir, app)
    assert (second.stored, second.live, second.removed, second.failed) == ([], 0, 0, [])
    assert second.ok
    _, names = storages["default"].listdir("recovery-tests")
    assert sorted(n for n in names if n.startswith((killed_id, failed_id))) == sorted(
        [killed_key.rsplit("/", 1)[1], failed_key.rsplit("/", 1)[1]]
    )


# -- spool files without a manifest ---------------------------------------------------


def test_young_file_without_manifest_is_left_alone(spool_dir: Path, app: Celery) -> None:
    """A young file without a manifest (maybe a run starting) is neither stored nor removed."""
    path, task_id = unnamed_orphan(spool_dir, compressed=False, lines=LINES, age=0)
    outcomes: list[str] = []
    report = sweep(spool_dir, app, progress=lambda n, t, outcome: outcomes.append(outcome))
    assert (report.stored, report.live, report.removed, report.failed) == ([], 0, 0, [])
    assert outcomes == [f"{path.name}: too new"]
    assert path.exists()
    assert not storages["default"].exists(f"parselog/recovered/{task_id}-1.log")


def test_old_empty_file_without_manifest_is_removed(spool_dir: Path, app: Celery) -> None:
    """An empty spool file without a manifest, older than the grace period, is removed."""
    path, task_id = unnamed_orphan(spool_dir, compressed=False, lines=[])
    assert path.stat().st_size == 0
    report = sweep(spool_dir, app)
    assert (report.stored, report.removed) == ([], 1)
    assert list(spool_dir.iterdir()) == []
    assert not storages["default"].exists(f"parselog/recovered/{task_id}-1.log")


@pytest.mark.parametrize(
    ("compressed", "suffix"), [(False, ".log"), (True, ".log.gz")], ids=["plain", "gzip"]
)
def test_old_file_without_manifest_is_stored_under_recovered(
    spool_dir: Path, app: Celery, compressed: bool, suffix: str
) -> None:
    """An old spool file without a manifest goes to parselog/recovered/<task>-<attempt>.log[.gz]."""
    _, task_id = unnamed_orphan(spool_dir, compressed=compressed, lines=LINES, attempt=2)
    key = f"parselog/recovered/{task_id}-2{suffix}"
    report = sweep(spool_dir, app)
    assert report.stored == [key]
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]
    assert list(spool_dir.iterdir()) == []
    entry = read_wire(app.backend, task_id)
    assert entry is not None
    assert (entry["task_id"], entry["attempt"], entry["key"]) == (task_id, 2, key)
    assert (entry["status"], entry["complete"], entry["storage"]) == ("stored", False, "default")


def test_file_with_a_damaged_manifest_is_stored_as_if_it_had_none(
    spool_dir: Path, app: Celery
) -> None:
    """An old file with a damaged manifest is stored under parselog/recovered/; both removed."""
    path, task_id = unnamed_orphan(spool_dir, compressed=False, lines=LINES)
    manifest_path(path).write_text('{"task_id": "cut sho', encoding="utf-8")
    report = sweep(spool_dir, app)
    key = f"parselog/recovered/{task_id}-1.log"
    assert report.stored == [key]
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]
    assert list(spool_dir.iterdir()) == []


# -- stale manifests ----------------------------------------------------------------


def test_old_manifest_without_its_log_is_removed(spool_dir: Path, app: Celery) -> None:
    """A manifest whose log is gone is removed once older than the grace period, kept before."""
    task_id = new_id()
    log = spool_dir / f"{task_id}-1-abcd1234.log.gz"
    write_manifest(log, start_fields(task_id, key_for(task_id, True)))
    report = sweep(spool_dir, app)
    assert (report.stored, report.removed, report.failed) == ([], 0, [])
    assert manifest_path(log).exists()  # young: its run may be storing it right now
    os.utime(manifest_path(log), (LONG_AGO, LONG_AGO))
    sweep(spool_dir, app)
    assert list(spool_dir.iterdir()) == []


def test_old_manifest_of_a_live_run_is_kept(spool_dir: Path, app: Celery) -> None:
    """An old manifest whose log exists (a long run) is not removed."""
    task_id = new_id()
    capture = new_capture(spool_dir, task_id, compressed=False)
    try:
        write_manifest(capture.path, start_fields(task_id, key_for(task_id, False)))
        os.utime(manifest_path(capture.path), (LONG_AGO, LONG_AGO))
        assert sweep(spool_dir, app).live == 1
        assert manifest_path(capture.path).exists()
    finally:
        remove_run_files(capture.path)
        capture.release()


# -- storage failures ---------------------------------------------------------------


def test_storage_failure_keeps_the_orphan_for_the_next_sweep(spool_dir: Path, app: Celery) -> None:
    """A failing storage: the file is reported failed and kept; a working one stores it later."""
    path, key, task_id = killed_orphan(spool_dir, compressed=True)
    FailingStorage.saves = 0
    failing = {"default": {"BACKEND": f"{__name__}.FailingStorage"}, "staticfiles": STATICFILES}
    outcomes: list[str] = []
    with override_settings(STORAGES=failing):
        report = sweep(
            spool_dir, app, attempts=2, progress=lambda n, t, outcome: outcomes.append(outcome)
        )
    assert FailingStorage.saves == 2
    assert not report.ok
    assert report.stored == []
    assert [failed_path for failed_path, _ in report.failed] == [path]
    message = report.failed[0][1]
    assert f"could not store {key} after 2 attempts" in message
    assert "OSError: the disk is on fire" in message
    assert outcomes == [f"{path.name}: failed: {message}"]
    assert sorted(spool_dir.iterdir()) == [path, manifest_path(path)]  # no working copy left
    assert read_wire(app.backend, task_id) is None
    report = sweep(spool_dir, app)
    assert report.ok
    assert report.stored == [key]
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]
    assert list(spool_dir.iterdir()) == []


def test_backend_failure_does_not_stop_the_log_being_stored(
    spool_dir: Path, app: Celery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing result backend: the log is still stored and removed, and a warning is logged."""
    _, key, _ = failed_upload_orphan(spool_dir, compressed=False)

    def broken_set(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the cache is down")

    monkeypatch.setattr(app.backend, "set", broken_set)
    with caplog.at_level(logging.WARNING, logger="celery_parselog.recovery"):
        report = sweep(spool_dir, app)
    assert report.ok
    assert report.stored == [key]
    assert stored_lines(key) == LINES
    assert list(spool_dir.iterdir()) == []
    assert any(key in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_one_bad_manifest_does_not_stop_the_sweep(spool_dir: Path, app: Celery) -> None:
    """A manifest without a key is refused, its file left as it is; the other orphans are
    still stored."""
    bad, _ = unnamed_orphan(spool_dir, compressed=False, lines=LINES, age=7200)
    write_manifest(bad, {"task_id": "no-key", "storage": "default"})
    _, key, _ = failed_upload_orphan(spool_dir, compressed=False)
    report = sweep(spool_dir, app)
    assert [path for path, _ in report.refused] == [bad]
    assert bad.name in report.refused[0][1]
    assert report.stored == [key]
    assert sorted(spool_dir.iterdir()) == [bad, manifest_path(bad)]


# -- progress -----------------------------------------------------------------------


def test_progress_is_told_each_file_number_total_and_outcome(spool_dir: Path, app: Celery) -> None:
    """The progress callback gets (number, total, "<name>: <outcome>") for every file, in order."""
    empty, _ = unnamed_orphan(spool_dir, compressed=False, lines=[], age=7200)
    orphan, key, _ = failed_upload_orphan(spool_dir, compressed=True)
    os.utime(orphan, (LONG_AGO, LONG_AGO))
    task_id = new_id()
    live = new_capture(spool_dir, task_id, compressed=False)
    calls: list[tuple[int, int, str]] = []
    try:
        write_manifest(live.path, start_fields(task_id, key_for(task_id, False)))
        report = sweep(spool_dir, app, progress=lambda *call: calls.append(call))
    finally:
        remove_run_files(live.path)
        live.release()
    assert calls == [
        (1, 3, f"{empty.name}: removed"),
        (2, 3, f"{orphan.name}: stored {key}"),
        (3, 3, f"{live.path.name}: live"),
    ]
    assert (report.stored, report.live, report.removed) == ([key], 1, 1)


def test_sweep_of_a_missing_folder_reports_nothing(tmp_path: Path, app: Celery) -> None:
    """Sweeping a folder that does not exist is no error and calls progress for nothing."""
    calls: list[tuple[int, int, str]] = []
    report = sweep(tmp_path / "missing", app, progress=lambda *call: calls.append(call))
    assert (report.stored, report.live, report.removed, report.failed) == ([], 0, 0, [])
    assert calls == []


# -- concurrent sweeps --------------------------------------------------------------


def test_concurrent_sweeps_store_each_orphan_once(
    spool_dir: Path, app: Celery, counting_storage: type[CountingStorage]
) -> None:
    """Two sweeps of one folder at the same time store every orphan exactly once."""
    counting_storage.reset(delay=0.01)
    keys = [failed_upload_orphan(spool_dir, compressed=False)[1] for _ in range(8)]
    keys += [failed_upload_orphan(spool_dir, compressed=True)[1] for _ in range(8)]
    keys += [killed_orphan(spool_dir, compressed=True)[1] for _ in range(4)]
    barrier = threading.Barrier(2)
    reports: list[RecoveryReport] = []
    errors: list[BaseException] = []

    def sweeper() -> None:
        try:
            barrier.wait(DEADLINE)
            reports.append(sweep(spool_dir, app))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(reports) == 2
    assert sorted(counting_storage.saved) == sorted(keys)
    assert sorted(reports[0].stored + reports[1].stored) == sorted(keys)
    assert all(report.ok for report in reports)
    assert list(spool_dir.iterdir()) == []


# -- permissions --------------------------------------------------------------------


def test_working_copy_of_an_unfinished_log_is_private(
    spool_dir: Path, app: Celery, counting_storage: type[CountingStorage]
) -> None:
    """The uploaded copy with the trailer is private (0600), like the spool file it copies."""
    path, key, _ = killed_orphan(spool_dir, compressed=False)
    assert path.stat().st_mode & 0o777 == 0o600
    previous = os.umask(0o022)
    try:
        report = sweep(spool_dir, app)
    finally:
        os.umask(previous)
    assert report.stored == [key]
    assert counting_storage.modes == [0o600]


# -- RecoverySweeper ----------------------------------------------------------------


class SweepLog:
    """Wraps recover_spool as the sweeper calls it, recording each sweep's report."""

    def __init__(self, fail_first: int = 0) -> None:
        self.reports: list[RecoveryReport] = []
        self.calls = 0
        self._fail_first = fail_first
        self._condition = threading.Condition()
        self._real = recover_spool

    def __call__(self, *args: Any, **kwargs: Any) -> RecoveryReport:
        with self._condition:
            self.calls += 1
            failing = self.calls <= self._fail_first
            if failing:
                self._condition.notify_all()
        if failing:
            raise RuntimeError("the sweep broke")
        report = self._real(*args, **kwargs)
        with self._condition:
            self.reports.append(report)
            self._condition.notify_all()
        return report

    def wait_for(self, sweeps: int, timeout: float = DEADLINE) -> bool:
        """Wait until ``sweeps`` sweeps finished (or were attempted, for failing ones)."""
        with self._condition:
            return self._condition.wait_for(
                lambda: len(self.reports) + min(self.calls, self._fail_first) >= sweeps, timeout
            )


@pytest.fixture
def sweep_log(monkeypatch: pytest.MonkeyPatch) -> SweepLog:
    """Record every sweep the sweeper threads make."""
    log = SweepLog()
    monkeypatch.setattr(recovery, "recover_spool", log)
    return log


@pytest.fixture
def start_sweeper(spool_dir: Path, app: Celery) -> Iterator[Callable[..., RecoverySweeper]]:
    """Start RecoverySweepers on the test's spool folder; stop them all afterwards."""
    started: list[RecoverySweeper] = []

    def start(interval: float = 0) -> RecoverySweeper:
        sweeper = RecoverySweeper(
            spool_dir,
            storage="default",
            attempts=1,
            backoff=0,
            backend=app.backend,
            interval=interval,
        )
        started.append(sweeper)
        sweeper.start()
        return sweeper

    yield start
    for sweeper in started:
        sweeper.stop()


def test_sweeper_stores_orphans_when_it_starts(
    spool_dir: Path, start_sweeper: Callable[..., RecoverySweeper]
) -> None:
    """A sweeper started with interval 0 stores the orphans already in its folder."""
    path, key, _ = killed_orphan(spool_dir, compressed=True)
    start_sweeper(interval=0)
    assert wait_until(lambda: not path.exists())
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]


def test_wake_makes_the_sweeper_look_again(
    spool_dir: Path, start_sweeper: Callable[..., RecoverySweeper], sweep_log: SweepLog
) -> None:
    """With interval 0 the sweeper waits after its first sweep; wake() makes it sweep again."""
    _, first_key, _ = killed_orphan(spool_dir, compressed=False)
    sweeper = start_sweeper(interval=0)
    assert sweep_log.wait_for(1)
    assert sweep_log.reports[0].stored == [first_key]
    path, key, _ = killed_orphan(spool_dir, compressed=True)
    assert not sweep_log.wait_for(2, timeout=0.3)  # nothing sweeps it on its own
    assert path.exists()
    sweeper.wake()
    assert wait_until(lambda: not path.exists())
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]


def test_after_wake_the_sweeper_looks_again_for_a_child_still_exiting(
    spool_dir: Path, start_sweeper: Callable[..., RecoverySweeper], sweep_log: SweepLog
) -> None:
    """A file still locked at wake() is stored by the follow-up sweeps once its lock goes."""
    sweeper = start_sweeper(interval=0)
    assert sweep_log.wait_for(1)
    task_id = new_id()
    key = key_for(task_id, False)
    capture = new_capture(spool_dir, task_id, compressed=False)
    try:
        write_manifest(capture.path, start_fields(task_id, key))
        emit_lines(capture, LINES)
        sweeper.wake()
        assert sweep_log.wait_for(2)
        assert sweep_log.reports[1].live == 1
    finally:
        capture.release()  # the lost child's lock goes only now
    assert wait_until(lambda: not capture.path.exists())
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]


def test_sweeper_with_an_interval_sweeps_again_on_its_own(
    start_sweeper: Callable[..., RecoverySweeper], sweep_log: SweepLog
) -> None:
    """With an interval, the sweeper sweeps repeatedly without being woken."""
    start_sweeper(interval=0.05)
    assert sweep_log.wait_for(3)


def test_failing_sweep_does_not_end_the_sweeper(
    spool_dir: Path,
    start_sweeper: Callable[..., RecoverySweeper],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sweep that raises is logged; the thread lives on and a wake() sweeps again."""
    log = SweepLog(fail_first=1)
    monkeypatch.setattr(recovery, "recover_spool", log)
    path, key, _ = killed_orphan(spool_dir, compressed=False)
    with caplog.at_level(logging.ERROR, logger="celery_parselog.recovery"):
        sweeper = start_sweeper(interval=0)
        assert log.wait_for(1)
        assert path.exists()
        sweeper.wake()
        assert wait_until(lambda: not path.exists())
    assert sweeper.is_alive()
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]
    assert any("failed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_stop_ends_the_sweeper_thread(
    start_sweeper: Callable[..., RecoverySweeper], sweep_log: SweepLog
) -> None:
    """stop() ends the thread, even while it waits with no interval."""
    sweeper = start_sweeper(interval=0)
    assert sweep_log.wait_for(1)
    assert sweeper.is_alive()
    sweeper.stop()
    assert not sweeper.is_alive()
    assert sweeper.daemon


# -- the worker's hooks: start_recovery, task_failure, task_revoked --------------------


class WakeRecorder:
    """Stands in for a sweeper's wake() (and stop()), counting calls."""

    def __init__(self) -> None:
        self.wakes = 0
        self.stops = 0

    def wake(self) -> None:
        self.wakes += 1

    def stop(self) -> None:
        self.stops += 1


@pytest.fixture
def worker_config(spool_dir: Path) -> CaptureConfig:
    """Capture settings sweeping the test's spool folder, only at start and when woken."""
    with override_settings(
        CELERY_PARSELOG_SPOOL_DIR=str(spool_dir),
        CELERY_PARSELOG_RECOVERY_INTERVAL=0,
        CELERY_PARSELOG_UPLOAD_ATTEMPTS=1,
        CELERY_PARSELOG_UPLOAD_BACKOFF=0,
    ):
        return CaptureConfig.from_settings()


@pytest.fixture
def started(worker_config: CaptureConfig, app: Celery, sweep_log: SweepLog) -> RecoverySweeper:
    """Capture enabled and recovery started as in a worker's main process (first sweep done)."""
    worker.enable(worker_config)
    sweeper = worker.start_recovery(app.backend)
    assert sweeper is not None
    assert sweep_log.wait_for(1)
    return sweeper


def send_failure(exception: BaseException) -> None:
    """Send task_failure as a worker's main process does for a task."""
    task_id = new_id()
    task_failure.send(
        sender=None,
        task_id=task_id,
        exception=exception,
        args=(),
        kwargs={},
        traceback=None,
        einfo=None,
    )


def send_revoked(*, terminated: bool) -> None:
    """Send task_revoked as a worker does."""
    task_revoked.send(sender=None, request=None, terminated=terminated, signum=15, expired=False)


def test_start_recovery_needs_capture_on(app: Celery) -> None:
    """Without enable(), start_recovery() starts nothing and returns None."""
    assert worker.start_recovery(app.backend) is None


def test_start_recovery_starts_one_sweeper(started: RecoverySweeper, app: Celery) -> None:
    """start_recovery() starts a live sweeper; a second call returns the same one."""
    assert started.is_alive()
    assert worker.start_recovery(app.backend) is started


def test_worker_lost_failure_wakes_the_sweeper(spool_dir: Path, started: RecoverySweeper) -> None:
    """A task_failure with WorkerLostError gets an orphan made after the first sweep stored."""
    path, key, _ = killed_orphan(spool_dir, compressed=True)
    send_failure(WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."))
    assert wait_until(lambda: not path.exists())
    assert stored_lines(key) == [*LINES, INCOMPLETE_TRAILER]


@pytest.mark.parametrize(
    ("exception", "wakes"),
    [
        (WorkerLostError("signal 9"), 1),
        (TimeLimitExceeded(30.0), 1),
        (ValueError("bad row"), 0),
        (SoftTimeLimitExceeded(), 0),
    ],
    ids=["worker-lost", "hard-time-limit", "value-error", "soft-time-limit"],
)
def test_task_failure_wakes_the_sweeper_only_when_the_child_was_lost(
    started: RecoverySweeper,
    monkeypatch: pytest.MonkeyPatch,
    exception: BaseException,
    wakes: int,
) -> None:
    """Only failures that lose the child (WorkerLostError, hard time limit) wake the sweeper."""
    recorder = WakeRecorder()
    monkeypatch.setattr(started, "wake", recorder.wake)
    send_failure(exception)
    assert recorder.wakes == wakes


@pytest.mark.parametrize(("terminated", "wakes"), [(True, 1), (False, 0)])
def test_task_revoked_wakes_the_sweeper_only_when_terminated(
    started: RecoverySweeper, monkeypatch: pytest.MonkeyPatch, terminated: bool, wakes: int
) -> None:
    """A revoke that terminated the child wakes the sweeper; a plain revoke does not."""
    recorder = WakeRecorder()
    monkeypatch.setattr(started, "wake", recorder.wake)
    send_revoked(terminated=terminated)
    assert recorder.wakes == wakes


def test_stop_recovery_stops_the_sweeper_and_disconnects(
    started: RecoverySweeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After stop_recovery() the thread has ended and the signals reach nothing."""
    worker.stop_recovery()
    assert not started.is_alive()
    # Were the receivers still connected, they would wake whatever sweeper is current.
    recorder = WakeRecorder()
    monkeypatch.setattr(worker, "_sweeper", recorder)
    send_failure(WorkerLostError("signal 9"))
    send_revoked(terminated=True)
    assert recorder.wakes == 0


def test_receivers_wake_the_current_sweeper_while_connected(
    started: RecoverySweeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control for the test above: while recovery runs, the same signals do reach a sweeper."""
    recorder = WakeRecorder()
    monkeypatch.setattr(worker, "_sweeper", recorder)
    send_failure(WorkerLostError("signal 9"))
    send_revoked(terminated=True)
    assert recorder.wakes == 2


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_child_forked_while_an_orphan_is_copied_keeps_no_share_of_it(
    spool_dir: Path, app: Celery, compressed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool forks a child while the sweeper copies a killed run's log (holding its lock):
    the child is left with no descriptor of the orphan, so no share of its lock either."""
    orphan, key, _ = killed_orphan(spool_dir, compressed=compressed)
    children: list[int] = []
    finish_copy = recovery._finish_copy

    def fork_midway(*args: Any) -> None:
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports and leaves at once
            os._exit(1 if is_open(orphan) else 0)
        children.append(child)
        finish_copy(*args)

    monkeypatch.setattr(recovery, "_finish_copy", fork_midway)
    assert sweep(spool_dir, app).stored == [key]
    (child,) = children
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child holds the orphan"
