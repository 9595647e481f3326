"""Unit tests for celery_parselog.spool: manifests written atomically, read with care, and locks."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celery_parselog.spool import (
    MANIFEST_SUFFIX,
    SpoolFolderError,
    checkpoint_copy_path,
    clean_stale_files,
    close_descriptor,
    create_private,
    create_spool_file,
    folder_problem,
    lock_exclusive,
    manifest_path,
    open_for_recovery,
    prepare_folder,
    read_manifest,
    recovery_copy_path,
    write_manifest,
)
from tests.unit.faults import is_open

TASK_ID = "5b0c7f2e-9d1a-4c3b-8e7f-6a5b4c3d2e1f"


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """A spool file path (not created) in a folder of this test only."""
    folder = tmp_path / "spool"
    folder.mkdir()
    return folder / f"{TASK_ID}-1-abcd1234.log.gz"


@pytest.fixture
def log_file(spool: Path) -> Path:
    """The spool file, created empty."""
    spool.touch()
    return spool


@pytest.fixture
def descriptors() -> Iterator[list[int]]:
    """File descriptors a test opened; every one still open is closed afterwards."""
    opened: list[int] = []
    yield opened
    for descriptor in opened:
        with contextlib.suppress(OSError):  # the test may have closed it already
            os.close(descriptor)


def open_descriptor(path: Path, descriptors: list[int], flags: int = os.O_RDONLY) -> int:
    """A new descriptor (a new open file description) on ``path``, closed after the test."""
    descriptor = os.open(path, flags)
    descriptors.append(descriptor)
    return descriptor


@pytest.fixture
def two_descriptors(log_file: Path, descriptors: list[int]) -> tuple[int, int]:
    """Two descriptors on the spool file, a writable one (the holder) first, then a
    read-only one; both closed after the test."""
    holder = open_descriptor(log_file, descriptors, os.O_WRONLY)
    return holder, open_descriptor(log_file, descriptors)


# -- manifest_path -------------------------------------------------------------------


def test_manifest_path_adds_the_suffix_to_the_whole_name(spool: Path) -> None:
    """The manifest of ``x.log.gz`` is ``x.log.gz.json`` in the same folder."""
    assert MANIFEST_SUFFIX == ".json"
    assert manifest_path(spool) == spool.parent / f"{TASK_ID}-1-abcd1234.log.gz.json"


# -- write_manifest ------------------------------------------------------------------


def test_write_manifest_writes_the_fields_with_a_version(spool: Path) -> None:
    """The manifest holds the given fields plus ``version: 1``, as a JSON object."""
    write_manifest(spool, {"task_id": TASK_ID, "key": "logs/a.log.gz", "attempt": 2})
    data = json.loads(manifest_path(spool).read_text(encoding="utf-8"))
    assert data == {"version": 1, "task_id": TASK_ID, "key": "logs/a.log.gz", "attempt": 2}


def test_write_manifest_leaves_no_temporary_file(spool: Path) -> None:
    """After writing (twice), the folder holds the manifest only: no temporary file remains."""
    write_manifest(spool, {"task_id": TASK_ID, "status": "pending"})
    write_manifest(spool, {"task_id": TASK_ID, "status": "stored"})
    assert sorted(spool.parent.iterdir()) == [manifest_path(spool)]


def test_write_manifest_replaces_the_older_one(spool: Path) -> None:
    """A second write replaces the first: only the new fields are read back."""
    write_manifest(spool, {"task_id": TASK_ID, "status": "pending", "planned": True})
    write_manifest(spool, {"task_id": TASK_ID, "status": "failed"})
    assert read_manifest(manifest_path(spool)) == {
        "version": 1,
        "task_id": TASK_ID,
        "status": "failed",
    }


def test_write_manifest_rewrites_a_short_one_in_place(spool: Path) -> None:
    """A manifest of at most a page is rewritten in its own file (no file made or renamed),
    shorter or longer than before, and reads back as the new fields only."""
    write_manifest(spool, {"task_id": TASK_ID, "status": "pending", "planned": "x" * 200})
    target = manifest_path(spool)
    inode = target.stat().st_ino
    write_manifest(spool, {"task_id": TASK_ID, "status": "stored"})
    assert target.stat().st_ino == inode
    assert read_manifest(target) == {"version": 1, "task_id": TASK_ID, "status": "stored"}
    write_manifest(spool, {"task_id": TASK_ID, "status": "failed", "error": "e" * 1000})
    assert target.stat().st_ino == inode
    assert read_manifest(target)["error"] == "e" * 1000
    assert sorted(spool.parent.iterdir()) == [target]


def test_write_manifest_does_not_write_through_a_planted_link(spool: Path, tmp_path: Path) -> None:
    """A link standing where the manifest is rewritten is replaced, never written through."""
    outside = tmp_path / "outside.json"
    outside.write_text("{}", encoding="utf-8")
    manifest_path(spool).symlink_to(outside)
    write_manifest(spool, {"task_id": TASK_ID, "status": "stored"})
    assert outside.read_text(encoding="utf-8") == "{}"
    assert not manifest_path(spool).is_symlink()
    assert read_manifest(manifest_path(spool))["status"] == "stored"


def test_write_manifest_replaces_a_long_one_by_rename(spool: Path) -> None:
    """A manifest longer than a page (more than one write could put whole) is replaced by
    a rename: a reader of the old one still reads it whole."""
    write_manifest(spool, {"task_id": TASK_ID, "status": "pending", "padding": "x" * 5000})
    target = manifest_path(spool)
    with target.open(encoding="utf-8") as old_reader:
        old_inode = os.fstat(old_reader.fileno()).st_ino
        write_manifest(spool, {"task_id": TASK_ID, "status": "stored"})
        old = json.load(old_reader)
    assert old["status"] == "pending"
    assert old["padding"] == "x" * 5000
    assert target.stat().st_ino != old_inode
    assert read_manifest(target)["status"] == "stored"


def test_write_manifest_that_fails_keeps_the_old_one_and_leaves_no_temporary_file(
    spool: Path,
) -> None:
    """Fields that cannot be written as JSON raise, and the previous manifest stays intact."""
    write_manifest(spool, {"task_id": TASK_ID, "status": "pending"})
    with pytest.raises(TypeError):
        write_manifest(spool, {"task_id": TASK_ID, "status": object()})
    assert sorted(spool.parent.iterdir()) == [manifest_path(spool)]
    assert read_manifest(manifest_path(spool))["status"] == "pending"


def test_write_manifest_into_a_missing_folder_raises_oserror(tmp_path: Path) -> None:
    """Writing beside a spool file whose folder does not exist raises OSError."""
    with pytest.raises(OSError):
        write_manifest(tmp_path / "missing" / "x-1-abc.log", {"task_id": "x"})


# -- read_manifest -------------------------------------------------------------------


def test_read_manifest_reads_what_write_manifest_wrote(spool: Path) -> None:
    """A round trip keeps strings, numbers, lists, nested objects and non-ASCII text."""
    fields = {"task_id": TASK_ID, "counts": {"INFO": 3}, "earlier_keys": ["a", "b"], "n": "é"}
    write_manifest(spool, fields)
    assert read_manifest(manifest_path(spool)) == {"version": 1, **fields}


@pytest.mark.parametrize(
    "content",
    [
        b'{"task_id": "5b0c7f2e',
        b"",
        b"not json at all",
        b'{"task_id": "a"} trailing',
    ],
    ids=["cut-short", "empty", "garbage", "trailing-data"],
)
def test_read_manifest_raises_valueerror_on_damaged_json(spool: Path, content: bytes) -> None:
    """A manifest that is not valid JSON raises ValueError."""
    manifest_path(spool).write_bytes(content)
    with pytest.raises(ValueError):
        read_manifest(manifest_path(spool))


def test_read_manifest_raises_valueerror_on_bytes_that_are_not_utf8(spool: Path) -> None:
    """A manifest whose bytes are not UTF-8 raises ValueError (not some other error)."""
    manifest_path(spool).write_bytes(b'{"task_id": "\xff\xfe"}')
    with pytest.raises(ValueError):
        read_manifest(manifest_path(spool))


@pytest.mark.parametrize("content", ["[1, 2]", '"a string"', "42", "null"])
def test_read_manifest_raises_valueerror_on_json_that_is_not_an_object(
    spool: Path, content: str
) -> None:
    """Valid JSON that is not an object raises ValueError naming the file."""
    manifest_path(spool).write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="does not hold a JSON object") as raised:
        read_manifest(manifest_path(spool))
    assert str(manifest_path(spool)) in str(raised.value)


def test_read_manifest_raises_filenotfounderror_when_missing(spool: Path) -> None:
    """A missing manifest raises FileNotFoundError (an OSError)."""
    with pytest.raises(FileNotFoundError):
        read_manifest(manifest_path(spool))


# -- lock_exclusive ------------------------------------------------------------------


def test_second_descriptor_cannot_take_the_lock_while_the_first_holds_it(
    two_descriptors: tuple[int, int],
) -> None:
    """With the lock held through one descriptor, another descriptor gets False (no wait)."""
    first, second = two_descriptors
    assert lock_exclusive(first, wait=False) is True
    assert lock_exclusive(second, wait=False) is False
    assert lock_exclusive(second, wait=False) is False  # asking again changes nothing


def test_second_descriptor_takes_the_lock_once_the_first_is_closed(
    log_file: Path, descriptors: list[int], two_descriptors: tuple[int, int]
) -> None:
    """Closing the holder's descriptor drops the lock; a read-only descriptor can then take it."""
    first, second = two_descriptors
    assert lock_exclusive(first, wait=True) is True
    assert lock_exclusive(second, wait=False) is False
    os.close(first)
    assert lock_exclusive(second, wait=False) is True
    third = open_descriptor(log_file, descriptors)
    assert lock_exclusive(third, wait=False) is False  # now the second holds it


def test_waiting_for_the_lock_returns_once_the_holder_lets_go(
    two_descriptors: tuple[int, int],
) -> None:
    """``wait=True`` blocks while another descriptor holds the lock and returns True after."""
    first, second = two_descriptors
    assert lock_exclusive(first, wait=False) is True
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(lock_exclusive(second, wait=True)))
    waiter.start()
    try:
        waiter.join(0.2)
        assert results == []  # still waiting: the first descriptor holds the lock
    finally:
        os.close(first)
        waiter.join(10)
    assert results == [True]


# -- cleaning -----------------------------------------------------------------------------


def test_stale_checkpoint_and_recovery_copies_are_cleaned(tmp_path: Path) -> None:
    """Working copies a killed process left (checkpoint, recovery, manifest) go once stale;
    fresh ones and spool files stay."""
    folder = tmp_path / "spool"
    folder.mkdir()
    log = folder / f"{TASK_ID}-1-abcd1234.log.gz"
    log.touch()
    stale = [
        checkpoint_copy_path(log),
        recovery_copy_path(log),
        folder / ".manifest-0123456789ab",
        folder / f"gone-1-ffff0000.log.gz{MANIFEST_SUFFIX}",
        folder / "gone-1-ffff0000.log.gz.tail-1",
    ]
    long_ago = time.time() - 3600
    for path in stale:
        path.touch()
        os.utime(path, (long_ago, long_ago))
    fresh = folder / f".checkpoint-{TASK_ID}-2-abcd1234.log.gz"
    fresh.touch()
    assert clean_stale_files(folder) == len(stale)
    assert sorted(folder.iterdir()) == sorted([log, fresh])


# -- the folder and its files ---------------------------------------------------------------


def test_new_folder_is_made_private(tmp_path: Path) -> None:
    """A spool folder that does not exist yet is created with mode 0700."""
    folder = tmp_path / "made" / "spool"
    descriptor, path = create_spool_file(folder, TASK_ID, 1, compressed=True)
    os.close(descriptor)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_world_writable_folder_is_refused_by_name(tmp_path: Path) -> None:
    """A folder others may write in (a pre-created 0777 one) is refused, naming it."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(SpoolFolderError, match=str(folder)):
        create_spool_file(folder, TASK_ID, 1, compressed=True)
    assert list(folder.iterdir()) == []


def test_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    """A folder owned by another uid is refused, even when nobody else may write in it."""
    if os.geteuid() != 0:
        pytest.skip("changing a folder's owner needs root")  # CI runs as root
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    assert folder_problem(folder) is not None
    with pytest.raises(SpoolFolderError, match="uid 65534"):
        prepare_folder(folder)


def test_symlinked_folder_is_refused(tmp_path: Path) -> None:
    """A link standing where the folder should be is not followed."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(SpoolFolderError, match="not a folder"):
        prepare_folder(link)


def test_working_file_planted_as_a_symlink_is_not_followed(tmp_path: Path, spool_dir: Path) -> None:
    """create_private replaces a planted link by a new private file; the target is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    planted = spool_dir / ".recovering-x.log.gz"
    planted.symlink_to(victim)
    descriptor = create_private(planted)
    os.write(descriptor, b"copy")
    os.close(descriptor)
    assert victim.read_text() == "keep me"
    assert not planted.is_symlink()
    assert stat.S_IMODE(planted.stat().st_mode) == 0o600


def test_read_manifest_does_not_follow_a_link(tmp_path: Path, spool_dir: Path) -> None:
    """A manifest that is a link (to any file) is not read."""
    target = tmp_path / "elsewhere.json"
    target.write_text('{"key": "x"}')
    manifest = spool_dir / "a-1-abc.log.json"
    manifest.symlink_to(target)
    with pytest.raises(OSError):
        read_manifest(manifest)


def test_forked_child_does_not_keep_a_spool_file_locked(tmp_path: Path) -> None:
    """A process forked while a spool file is held does not inherit its lock: once the parent
    lets go, the file can be locked although the child still lives."""
    descriptor, path = create_spool_file(tmp_path / "spool", TASK_ID, 1, compressed=False)
    ready, told = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only says it is running, then waits
        os.write(told, b"x")
        time.sleep(3)
        os._exit(0)
    os.close(told)
    try:
        assert os.read(ready, 1) == b"x"  # the child is past its fork hooks
        close_descriptor(descriptor)
        other = os.open(path, os.O_RDONLY)
        try:
            assert lock_exclusive(other, wait=False)
        finally:
            os.close(other)
    finally:
        os.close(ready)
        os.kill(child, 9)
        os.waitpid(child, 0)


@pytest.mark.parametrize("step", ["open", "close"])
def test_a_fork_by_another_thread_never_falls_between_a_descriptor_and_its_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The sweeper opens (or closes) a spool file while the pool forks a child from another
    thread: the fork waits, so the child never holds the file (and a share of its lock)
    without knowing it. The step is slowed down between the system call and the
    registration, where a fork used to slip in."""
    _, path = create_spool_file(tmp_path / "spool", TASK_ID, 1, compressed=False)
    slowed = threading.Event()
    real_open, real_close = os.open, os.close

    def slow_open(target: Any, flags: int, mode: int = 0o777) -> int:
        descriptor = real_open(target, flags, mode)
        if step == "open" and Path(target) == path:
            slowed.set()
            time.sleep(0.5)
        return descriptor

    def slow_close(descriptor: int) -> None:
        if step == "close" and _references_descriptor(descriptor, path):
            slowed.set()
            time.sleep(0.5)
        real_close(descriptor)

    # The package calls os.open and os.close through the os module, patched here.
    monkeypatch.setattr(os, "open", slow_open)
    monkeypatch.setattr(os, "close", slow_close)
    opened: list[int] = []
    if step == "close":
        opened.append(open_for_recovery(path))
    sweeper = threading.Thread(
        target=lambda: (
            opened.append(open_for_recovery(path))
            if step == "open"
            else close_descriptor(opened[0])
        )
    )
    sweeper.start()
    assert slowed.wait(5)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports and leaves at once
        os._exit(1 if is_open(path) else 0)
    sweeper.join(5)
    _, status = os.waitpid(child, 0)
    monkeypatch.undo()
    if step == "open":
        close_descriptor(opened[-1])
    assert os.waitstatus_to_exitcode(status) == 0, "the child holds the spool file"


def _references_descriptor(descriptor: int, path: Path) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/self/fd/{descriptor}").readlink() == path
    return False
