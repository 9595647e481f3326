"""The spool folder's contract: every name in it, how each file is made, and when it is cleaned.

Every run writes ``<task id>-<attempt>-<random>.log[.gz]`` (the *spool file*) and,
beside it, the same name plus:

* ``.json``: the manifest, which task the log belongs to and where it is to be stored;
* ``.tail-0`` / ``.tail-1``: the kept end of a log past ``MAX_BYTES`` (see ``tail.py``).

Working files start with a dot, so no sweep ever takes them for a log:
``.manifest-*`` (a manifest being replaced), ``.checkpoint-<spool name>`` (a
checkpoint's copy being uploaded) and ``.recovering-<spool name>`` (recovery's copy of
an unfinished log). Every file is created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` and mode
0600, so nothing planted in the folder (a symlink, a file of another user) is ever
followed or written through.

The run holds an exclusive ``flock`` on its spool file for as long as it owns it, so
recovery can tell a live run (locked) from an orphan (unlocked) without guessing from
ages or process ids; the kernel drops the lock when a process dies, however it dies.
A lock lives as long as any descriptor of its open file, and a forked process gets
copies of every descriptor: so each descriptor this module hands out is registered,
and in a forked child it is pointed at ``/dev/null`` (see :func:`_after_fork_in_child`),
which drops the child's share of the lock and makes any write from it harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from celery_parselog.keys import sanitize_component

__all__ = [
    "MANIFEST_SUFFIX",
    "STALE_SECONDS",
    "SpoolFolderError",
    "checkpoint_copy_path",
    "clean_stale_files",
    "close_descriptor",
    "closing_held",
    "create_private",
    "create_spool_file",
    "folder_problem",
    "is_spool_file",
    "lock_exclusive",
    "manifest_path",
    "open_for_recovery",
    "parse_spool_name",
    "prepare_folder",
    "read_manifest",
    "recovery_copy_path",
    "remove_run_files",
    "spool_files",
    "tail_paths",
    "write_manifest",
]

MANIFEST_SUFFIX = ".json"
MANIFEST_VERSION = 1
# A spool file without a manifest may be a run that is starting right now, and a
# working file may be in use: leave such files alone this long.
STALE_SECONDS = 300

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SPOOL_NAME = re.compile(r"^(?P<task_id>.+)-(?P<attempt>\d+)-[0-9a-z]+\.log(?:\.gz)?$")
_CHECKPOINT_PREFIX = ".checkpoint-"
_RECOVERING_PREFIX = ".recovering-"
_MANIFEST_WORK_PREFIX = ".manifest-"


# -- names ---------------------------------------------------------------------------


def manifest_path(spool: Path) -> Path:
    return spool.with_name(spool.name + MANIFEST_SUFFIX)


def tail_paths(spool: Path) -> tuple[Path, Path]:
    """The older and the current tail segment of ``spool`` (recovery reads them in order)."""
    return spool.with_name(spool.name + ".tail-0"), spool.with_name(spool.name + ".tail-1")


def checkpoint_copy_path(spool: Path) -> Path:
    return spool.with_name(_CHECKPOINT_PREFIX + spool.name)


def recovery_copy_path(spool: Path) -> Path:
    return spool.with_name(_RECOVERING_PREFIX + spool.name)


def is_spool_file(name: str) -> bool:
    return name.endswith((".log", ".log.gz")) and not name.startswith(".")


def parse_spool_name(name: str) -> tuple[str, int] | None:
    """The sanitized task id and the attempt a spool file's name carries, if it is one."""
    match = _SPOOL_NAME.match(name)
    if match is None:
        return None
    return match["task_id"], int(match["attempt"])


def spool_files(spool_dir: Path) -> list[Path]:
    """The spool files in a folder, oldest first."""
    try:
        names = [path for path in spool_dir.iterdir() if is_spool_file(path.name)]
    except FileNotFoundError:
        return []
    return sorted(names, key=_mtime)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


# -- descriptors that must not outlive a fork ------------------------------------------

# Every descriptor of a spool file this process opens is registered here, so that a
# forked child lets go of it (see _after_fork_in_child). The lock is also taken around
# every fork (os.register_at_fork), and a descriptor is opened and registered, or
# forgotten and closed, while holding it: otherwise a fork that another thread makes
# between the two steps (a pool replacing a child, while the sweeper opens a spool
# file) would hand the child a descriptor it does not know of, and with it a share of
# the file's lock for as long as the child lives.
_held: set[int] = set()
_held_lock = threading.Lock()


def _open_held(path: Path, flags: int, mode: int = 0o777) -> int:
    """``os.open`` and register the descriptor, with no fork in between."""
    with _held_lock:
        descriptor = os.open(path, flags, mode)
        _held.add(descriptor)
        return descriptor


@contextlib.contextmanager
def closing_held(descriptor: int) -> Iterator[None]:
    """Forget a registered descriptor and close it (in the ``with`` block, for a stream
    that owns it) with no fork in between."""
    with _held_lock:
        _held.discard(descriptor)
        yield


def _after_fork_in_child() -> None:
    """In a forked child, point every held descriptor at ``/dev/null``.

    Closing would free the number for the child's next ``open()``, and a buffered
    writer the child inherited could then flush into that unrelated file; ``dup2``
    keeps the number taken while dropping the child's reference to the spool file
    (and with it the child's share of the file's lock).
    """
    global _held_lock
    # A new lock rather than a release: the child's copy is held (by the forking thread,
    # or by another thread, which the child lacks, after a fork that ran no hooks before).
    _held_lock = threading.Lock()
    held = list(_held)
    _held.clear()
    if not held:
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for descriptor in held:
        with contextlib.suppress(OSError):
            os.dup2(null, descriptor)
    os.close(null)


def _before_fork() -> None:
    _held_lock.acquire()


def _after_fork_in_parent() -> None:
    _held_lock.release()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


# -- the folder ---------------------------------------------------------------------------


class SpoolFolderError(OSError):
    """The spool folder is not private to this process's user, so it is not used."""


_verified: set[Path] = set()


def folder_problem(spool_dir: Path) -> str | None:
    """Why ``spool_dir`` must not be used, or ``None`` when it is private to this user.

    It must be a real folder (not a link to one), owned by this process's user, and
    writable by nobody else: otherwise another account could read the logs, plant
    files for recovery to act on, or swap them while they are written.
    """
    try:
        status = os.lstat(spool_dir)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISDIR(status.st_mode):
        return f"{spool_dir} is not a folder (a link or a file stands there)"
    if status.st_uid != os.geteuid():
        return (
            f"{spool_dir} belongs to uid {status.st_uid}, not to this worker's user "
            f"(uid {os.geteuid()})"
        )
    if status.st_mode & 0o022:
        return f"{spool_dir} is writable by other users (mode {stat.S_IMODE(status.st_mode):o})"
    return None


def prepare_folder(spool_dir: Path) -> None:
    """Create the spool folder with mode 0700 if need be, and make sure it is private.

    Raises :class:`SpoolFolderError` naming the folder when it is not. A folder once
    verified stays verified in this process: only its owner could change it since.
    """
    if spool_dir in _verified:
        return
    with contextlib.suppress(FileExistsError):
        spool_dir.mkdir(mode=0o700, parents=True)
    if (problem := folder_problem(spool_dir)) is not None:
        raise SpoolFolderError(f"celery-parselog refuses the spool folder: {problem}")
    _verified.add(spool_dir)


# -- creating files ---------------------------------------------------------------------


def create_private(path: Path) -> int:
    """Create ``path`` for writing, private and new; a leftover working file is removed first.

    ``O_EXCL|O_NOFOLLOW`` means a name planted in the folder (a symlink, say) is never
    followed: it is unlinked (which removes the link, never its target) and made anew.
    """
    try:
        return _open_held(path, _CREATE, 0o600)
    except FileExistsError:
        path.unlink(missing_ok=True)
        return _open_held(path, _CREATE, 0o600)


def create_spool_file(
    spool_dir: Path, task_id: str, attempt: int, *, compressed: bool
) -> tuple[int, Path]:
    """Create and lock a new spool file for one run; returns its descriptor and path."""
    suffix = ".log.gz" if compressed else ".log"
    prefix = f"{sanitize_component(task_id)}-{attempt}-"
    prepare_folder(spool_dir)
    while True:
        path = spool_dir / f"{prefix}{secrets.token_hex(5)}{suffix}"
        try:
            descriptor = _open_held(path, _CREATE, 0o600)
        except FileExistsError:
            continue
        except FileNotFoundError:  # the folder went away since it was verified
            _verified.discard(spool_dir)
            prepare_folder(spool_dir)
            continue
        lock_exclusive(descriptor, wait=True)  # nobody else knows the name yet
        return descriptor, path


def write_manifest(spool: Path, fields: Mapping[str, Any]) -> None:
    """Write a spool file's manifest: created when it is new, rewritten in place when not.

    Only a run that holds its spool file's lock writes its manifest, and readers
    (recovery) read a manifest only once that lock is free, so no reader ever sees one
    being written. What must hold is that a process killed while writing leaves a whole
    manifest, old or new. A new one is created in one write; a process killed before that
    write leaves none, which recovery handles (a file without a manifest). A rewrite (the
    run's end, a checkpoint, a failed upload) is one ``pwrite`` at offset 0 of at most a
    page, padded with spaces (which JSON ignores) over the old text: the kernel copies a
    page whole or not at all, so a kill leaves the old manifest or the new one. That
    costs no file created, renamed or removed, each of which is a journal write of the
    file system, a millisecond or more on a busy disk. A longer manifest is replaced
    through a working file and a rename.
    """
    target = manifest_path(spool)
    data = json.dumps({"version": MANIFEST_VERSION, **fields}).encode("utf-8")
    try:
        descriptor = os.open(target, _CREATE, 0o600)
    except FileExistsError:
        _rewrite_manifest(target, data)
        return
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


# The most a single write is sure to put in the file whole, even if the process is killed.
_ATOMIC_WRITE = 4096


def _rewrite_manifest(target: Path, data: bytes) -> None:
    if len(data) <= _ATOMIC_WRITE:
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            pass  # a link planted there, or gone meanwhile: replace it instead
        else:
            try:
                status = os.fstat(descriptor)
                if stat.S_ISREG(status.st_mode) and status.st_size <= _ATOMIC_WRITE:
                    padded = data.ljust(status.st_size, b" ")
                    if os.pwrite(descriptor, padded, 0) == len(padded):
                        return
            finally:
                os.close(descriptor)
    _replace_manifest(target, data)


def _replace_manifest(target: Path, data: bytes) -> None:
    working = target.with_name(f"{_MANIFEST_WORK_PREFIX}{secrets.token_hex(6)}")
    descriptor = os.open(working, _CREATE, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        working.replace(target)
    except BaseException:
        working.unlink(missing_ok=True)
        raise


def read_manifest(path: Path) -> dict[str, Any]:
    """Read a manifest. Raises ``OSError`` or ``ValueError`` when it is missing or damaged."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(descriptor, encoding="utf-8") as stream:
        data = json.load(stream)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def lock_exclusive(descriptor: int, *, wait: bool) -> bool:
    """Take the exclusive lock of a spool file; ``False`` if another holder has it (no wait)."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def open_for_recovery(path: Path) -> int:
    """A registered read descriptor on a spool file, never through a link; pair with
    :func:`close_descriptor`.

    ``O_NONBLOCK`` so that a FIFO planted under a spool name cannot hold the open (and
    the forks waiting on it) for ever; it changes nothing for a regular file, and the
    caller refuses anything else.
    """
    return _open_held(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)


def close_descriptor(descriptor: int) -> None:
    """Close a descriptor from this module (dropping any lock taken through it)."""
    with closing_held(descriptor):
        os.close(descriptor)


# -- cleaning -----------------------------------------------------------------------------


def remove_run_files(spool: Path, *, only_log_and_manifest: bool = False) -> None:
    """Remove a run's spool file and everything beside it, once its log is safely stored.

    A run that knows it made nothing else (no kept tail: its end removed the tail's
    segments already) says ``only_log_and_manifest`` and saves the other look-ups.
    """
    extra = () if only_log_and_manifest else (*tail_paths(spool), checkpoint_copy_path(spool))
    for path in (spool, manifest_path(spool), *extra):
        path.unlink(missing_ok=True)


def clean_stale_files(spool_dir: Path, *, older_than: float = STALE_SECONDS) -> int:
    """Remove what no run will come back for; returns how many files went.

    Manifests and tail segments whose spool file is gone, and working files (manifest
    replacements, checkpoint copies, recovery copies) of a process that died while
    writing them. Only files untouched for ``older_than`` seconds, so nothing a live
    run is using goes.
    """
    try:
        entries = list(spool_dir.iterdir())
    except FileNotFoundError:
        return 0
    removed = 0
    now = time.time()
    for path in entries:
        name = path.name
        if name.startswith((_MANIFEST_WORK_PREFIX, _CHECKPOINT_PREFIX, _RECOVERING_PREFIX)):
            stale = True
        elif name.endswith((MANIFEST_SUFFIX, ".tail-0", ".tail-1")):
            stale = not path.with_name(name.rsplit(".", 1)[0]).exists()
        else:
            stale = False
        if stale and now - _mtime(path) > older_than:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
