"""Storing orphaned logs: spool files left by failed uploads, killed children or stopped workers.

An orphan is a spool file whose lock nobody holds (see :mod:`celery_parselog.spool`).
Each goes through the same :func:`~celery_parselog.delivery.deliver` as a run that
ends. A run that never reached its end gets a note, ``log incomplete: worker lost``,
and its entry says ``complete: false``. Recovery is idempotent: an orphan is removed
only once the storage confirmed it, and a file being recovered is locked, so several
workers sharing one spool folder never store the same log twice.

Recovery trusts nothing in the folder beyond what the folder's owner could have
written: files are opened without following links and must be regular, owned by
this user and not linked elsewhere; the storage alias comes from the settings; a
manifest's key must be a clean relative key under the configured prefix that ends in
the run's own task id and attempt; and an existing object is replaced only when its
digest is that of this run's own last checkpoint.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from celery.backends.base import Backend
from django.core.files.storage import storages

from celery_parselog import metrics
from celery_parselog.delivery import HOSTNAME, Destination, deliver
from celery_parselog.entry import RunEntry, Status, iso
from celery_parselog.formatting import (
    DEFAULT_NOTE_FORMAT,
    INCOMPLETE_NOTE,
    LineFormatter,
    build_formatter,
    cut_note,
)
from celery_parselog.keys import normalize_key, sanitize_component
from celery_parselog.run import FALLBACK_KEY
from celery_parselog.spool import (
    STALE_SECONDS,
    clean_stale_files,
    close_descriptor,
    create_private,
    folder_problem,
    lock_exclusive,
    manifest_path,
    open_for_recovery,
    parse_spool_name,
    read_manifest,
    recovery_copy_path,
    spool_files,
    tail_paths,
)
from celery_parselog.storage import digest
from celery_parselog.streams import Writer, copy_stream, readable_gzip_chunks
from celery_parselog.tail import copy_kept_tail

__all__ = ["RecoveryReport", "RecoverySweeper", "find_orphans", "recover_spool"]

logger = logging.getLogger("celery_parselog.recovery")

Progress = Callable[[int, int, str], None]


@dataclass
class RecoveryReport:
    """What one sweep of a spool folder did."""

    stored: list[str] = field(default_factory=list)
    live: int = 0
    removed: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class _Outcome:
    """What became of one spool file."""

    kind: str  # stored, failed, refused, live, removed, gone, too new
    detail: str = ""

    def __str__(self) -> str:
        if not self.detail:
            return self.kind
        return (
            f"{self.kind} {self.detail}" if self.kind == "stored" else f"{self.kind}: {self.detail}"
        )


def recover_spool(
    spool_dir: Path,
    *,
    storage: str,
    attempts: int,
    backoff: float,
    backend: Backend | None = None,
    progress: Progress | None = None,
    log_format: str = DEFAULT_NOTE_FORMAT,
    key_template: Any = None,
) -> RecoveryReport:
    """Store every orphan in ``spool_dir``; live runs' files are left alone.

    ``storage`` receives every log, whatever a manifest says. ``backend``, when given,
    receives the final ``parselog`` entry of each recovered run. ``log_format`` writes
    the notes recovery adds (``log incomplete: worker lost``) in the logs' own format;
    ``key_template`` (the ``KEY`` setting) gives the prefix every manifest's key must
    keep.
    """
    report = RecoveryReport()
    if (problem := folder_problem(spool_dir)) is not None:
        logger.error("Recovery refuses the spool folder: %s", problem)
        report.refused.append((spool_dir, problem))
        return report
    destination = Destination(storage, attempts, backoff)
    prefixes = _allowed_prefixes(key_template)
    files = spool_files(spool_dir)
    for number, path in enumerate(files, start=1):
        try:
            outcome = _recover_file(path, destination, backend, log_format, prefixes)
        except Exception as error:  # one bad file must not stop the sweep
            logger.exception("Could not recover %s", path)
            outcome = _Outcome("failed", f"{type(error).__name__}: {error}")
        if outcome.kind == "stored":
            report.stored.append(outcome.detail)
        elif outcome.kind == "failed":
            report.failed.append((path, outcome.detail))
        elif outcome.kind == "refused":
            report.refused.append((path, outcome.detail))
        elif outcome.kind == "live":
            report.live += 1
        elif outcome.kind == "removed":
            report.removed += 1
        if progress is not None:
            progress(number, len(files), f"{path.name}: {outcome}")
    clean_stale_files(spool_dir)
    _report_backlog(spool_dir)
    return report


def _report_backlog(spool_dir: Path) -> None:
    """Tell the metrics how many logs wait in the folder, and how big they are."""
    files = spool_files(spool_dir)
    size = 0
    for path in files:
        with contextlib.suppress(OSError):
            size += path.lstat().st_size
    metrics.spool_backlog(len(files), size, HOSTNAME)


def find_orphans(spool_dir: Path) -> bool:
    """Whether a spool file lies unlocked and not merely waiting for a retry of its upload.

    Cheap enough to call every second: it lists the folder and tries each file's lock.
    The sweeper uses it to store a killed child's log within about a second, since
    Celery does not always say a child was lost (a requeued message sends nothing).
    """
    for path in spool_files(spool_dir):
        try:
            descriptor = open_for_recovery(path)
        except OSError:
            continue
        try:
            if not lock_exclusive(descriptor, wait=False):
                continue
        finally:
            close_descriptor(descriptor)
        try:
            manifest = read_manifest(manifest_path(path))
        except (OSError, ValueError):
            manifest = None
        if manifest is None or manifest.get("status") != Status.FAILED.value:
            return True
    return False


def _refusal(path: Path, descriptor: int) -> str | None:
    """Why a file in the spool folder must not be read, or ``None`` when it may."""
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        return f"{path} is not a regular file"
    if status.st_uid != os.geteuid():
        return f"{path} belongs to uid {status.st_uid}, not to this worker's user"
    if status.st_nlink > 1:
        return f"{path} has other hard links"
    return None


def _recover_file(  # noqa: PLR0911 - one return per outcome reads best
    path: Path,
    destination: Destination,
    backend: Backend | None,
    log_format: str,
    prefixes: tuple[str, ...],
) -> _Outcome:
    try:
        descriptor = open_for_recovery(path)
    except FileNotFoundError:
        return _Outcome("gone")
    except OSError as error:  # a symlink (ELOOP) or a file we may not read
        return _refuse(path, f"{path} cannot be opened safely: {error.strerror}")
    try:
        if not lock_exclusive(descriptor, wait=False):
            return _Outcome("live")
        if os.fstat(descriptor).st_nlink == 0:
            return _Outcome("gone")  # stored and removed by its run while we waited
        if (problem := _refusal(path, descriptor)) is not None:
            return _refuse(path, problem)
        loaded = _load_manifest(path)
        if loaded is None:
            if time.time() - os.fstat(descriptor).st_mtime < STALE_SECONDS:
                return _Outcome("too new")
            if os.fstat(descriptor).st_size == 0:
                path.unlink(missing_ok=True)
                return _Outcome("removed")
            entry, hostname = _unnamed_entry(path, destination.storage), ""
        else:
            entry, hostname = loaded
            if (problem := _key_problem(path, entry, prefixes)) is not None:
                return _refuse(path, problem)
        return _store(path, descriptor, entry, hostname, destination, backend, log_format)
    finally:
        close_descriptor(descriptor)  # drops the lock


def _refuse(path: Path, problem: str) -> _Outcome:
    logger.warning("Recovery leaves %s untouched: %s", path, problem)
    return _Outcome("refused", problem)


def _load_manifest(path: Path) -> tuple[RunEntry, str] | None:
    try:
        data = read_manifest(manifest_path(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("Ignoring the damaged manifest of %s: %s", path, error)
        return None
    return RunEntry.from_wire(data), str(data.get("hostname") or "")


def _unnamed_entry(path: Path, storage: str) -> RunEntry:
    """The entry of a spool file whose run died before describing it."""
    parsed = parse_spool_name(path.name)
    task_id, attempt = parsed if parsed else (path.name.split(".")[0], 1)
    suffix = ".log.gz" if path.name.endswith(".gz") else ".log"
    return RunEntry(
        status=Status.PENDING,
        uri="",
        storage=storage,
        key=f"parselog/recovered/{task_id}-{attempt}{suffix}",
        attempt=attempt,
        task_id=task_id,
    )


def _allowed_prefixes(key_template: Any) -> tuple[str, ...]:
    """The fixed start every recovered key must keep: the ``KEY`` template's text before
    its first field (to the last ``/``), and the fallback key's. A key function has none."""
    fallback = FALLBACK_KEY.split("{", 1)[0]
    if key_template is None:
        from celery_parselog.conf import ParselogSettings

        try:
            key_template = ParselogSettings().key
        except Exception:  # noqa: BLE001 - a bad KEY is reported by the checks
            return (fallback,)
    if not isinstance(key_template, str):
        return ("",)
    fixed = key_template.split("{", 1)[0]
    return (fixed[: fixed.rfind("/") + 1], fallback)


def _key_problem(path: Path, entry: RunEntry, prefixes: tuple[str, ...]) -> str | None:
    """Why a manifest's key must not be used, or ``None``."""
    key = entry.key
    parsed = parse_spool_name(path.name)
    task_id = sanitize_component(entry.task_id)
    if parsed is not None and parsed != (task_id, entry.attempt):
        return f"the manifest of {path.name} names another run ({entry.task_id}, {entry.attempt})"
    if not key or key.startswith("/") or normalize_key(key) != key:
        return f"the manifest of {path.name} names a key that is not clean: {key!r}"
    if not any(key.startswith(prefix) for prefix in prefixes):
        return f"the manifest of {path.name} names a key outside {' or '.join(prefixes)}: {key!r}"
    stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
    if not stem.endswith(f"{task_id}-{entry.attempt}"):
        return f"the manifest of {path.name} names a key of another run: {key!r}"
    return None


def _store(  # noqa: PLR0917
    path: Path,
    descriptor: int,
    entry: RunEntry,
    hostname: str,
    destination: Destination,
    backend: Backend | None,
    log_format: str,
) -> _Outcome:
    finished = entry.finished_run
    upload = path
    if not finished:
        notes = build_formatter(log_format, task_id=entry.task_id, task_name=entry.task_name)
        upload = _with_trailer(path, descriptor, notes)
    entry = entry.replace(
        storage=destination.storage,
        complete=finished and entry.complete is not False,
        incomplete_reason=entry.incomplete_reason if finished else "worker lost",
        recovered=iso(datetime.now(timezone.utc)),
    )
    replace, key = _replacement(entry, destination.storage, upload if finished else None)
    try:
        final = deliver(
            path,
            entry.replace(key=key),
            destination=destination,
            backend=backend,
            upload=upload,
            replace=replace,
            recovered=True,
            hostname=hostname,
        )
    finally:
        if upload != path:
            upload.unlink(missing_ok=True)
    if not final.stored:
        return _Outcome("failed", final.error or "")
    logger.info("Recovered %s as %s", path.name, final.uri)
    return _Outcome("stored", final.key)


def _replacement(entry: RunEntry, alias: str, finished_log: Path | None) -> tuple[bool, str]:
    """Whether to replace the object at the entry's key, and the key to store under.

    An object already there is replaced only when it is this run's own: its last
    checkpoint (its digest is the one the run noted), or, for a run that finished
    (``finished_log``), this very log, stored by the run before it was killed while
    publishing, recording or tidying up. Anything else stays, and the log goes beside
    it under a name of its own.
    """
    storage = storages[alias]
    try:
        exists = storage.exists(entry.key)
    except Exception:  # noqa: BLE001 - the upload will say what is wrong with the storage
        return False, entry.key
    if not exists:
        return False, entry.key
    own = {entry.checkpoint_sha256} - {None}
    if finished_log is not None:
        with contextlib.suppress(OSError), finished_log.open("rb") as stream:
            own.add(digest(stream)[1])
    if own and _stored_digest(alias, entry.key) in own:
        return True, entry.key
    head, slash, name = entry.key.rpartition("/")
    stem, dot, extension = name.partition(".")
    return False, f"{head}{slash}{stem}-recovered-{secrets.token_hex(4)}{dot}{extension}"


def _stored_digest(alias: str, key: str) -> str | None:
    try:
        with storages[alias].open(key, "rb") as stream:
            return digest(stream)[1]
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing to prove
        return None


def _with_trailer(path: Path, descriptor: int, notes: LineFormatter) -> Path:
    """A copy of an unfinished log, readable to its last synced byte, then its kept tail
    (if it had passed the cap) and the note that the worker was lost."""
    copy = recovery_copy_path(path)
    target_descriptor = create_private(copy)
    try:
        with (
            # Not a dup: a second descriptor nobody registered would hand a child
            # forked meanwhile a share of the orphan's lock.
            os.fdopen(descriptor, "rb", closefd=False) as source,
            os.fdopen(target_descriptor, "wb", closefd=False) as plain,
        ):
            source.seek(0)
            if path.name.endswith(".gz"):
                with gzip.GzipFile(fileobj=plain, mode="wb", compresslevel=6, mtime=0) as target:
                    last = b""
                    for text in readable_gzip_chunks(source):
                        target.write(text)
                        last = text[-1:]
                    _finish_copy(path, target, last, notes)
            else:
                last = copy_stream(source, plain)
                _finish_copy(path, plain, last, notes)
    finally:
        close_descriptor(target_descriptor)
    return copy


def _finish_copy(path: Path, target: Writer, last: bytes, notes: LineFormatter) -> None:
    segments = [segment for segment in tail_paths(path) if segment.exists()]
    if any(segment.lstat().st_size for segment in segments):
        target.write(_line(last, notes.note(cut_note())))
        last = copy_kept_tail(path, target) or last
    target.write(_line(last, notes.note(INCOMPLETE_NOTE)))


def _line(last: bytes, text: str) -> bytes:
    """``text`` as a line of its own, after whatever the log's last byte was."""
    prefix = b"" if last in (b"", b"\n") else b"\n"
    return prefix + text.encode() + b"\n"


class RecoverySweeper(threading.Thread):
    """Sweeps a worker's spool folder: when it starts, every ``interval`` seconds, soon after
    a child process was lost (killed, out of memory, hard time limit, revoked with
    ``terminate=True``), and within about a second of any spool file being left unlocked.
    With ``find_lost``, it also calls that every ``find_lost_every`` seconds, to mark the
    runs of workers on other hosts that are gone (:func:`celery_parselog.lost.find_lost`).

    Runs in the worker's main process, which survives its children.
    """

    _SOON_SECONDS = 1.0
    _SOON_SWEEPS = 5  # the lost child may still be exiting: look again a few times
    PROBE_SECONDS = 1.0

    def __init__(
        self,
        spool_dir: Path,
        *,
        storage: str,
        attempts: int,
        backoff: float,
        backend: Backend | None,
        interval: float,
        log_format: str = DEFAULT_NOTE_FORMAT,
        key_template: Any = None,
        find_lost: Callable[[], object] | None = None,
        find_lost_every: float = 0.0,
    ) -> None:
        super().__init__(name="celery-parselog-recovery", daemon=True)
        self._find_lost = find_lost
        self._find_lost_every = find_lost_every
        self._storage = storage
        self._attempts = attempts
        self._backoff = backoff
        self._backend = backend
        self._spool_dir = spool_dir
        self._interval = interval
        self._log_format = log_format
        self._key_template = key_template
        self._woken = threading.Event()
        self._stopped = threading.Event()
        self._soon = 0

    def run(self) -> None:
        next_sweep = 0.0
        next_lost = time.monotonic() + self._find_lost_every
        while not self._stopped.is_set():
            now = time.monotonic()
            if now >= next_sweep or self._soon or self._orphan_waiting():
                self._sweep()
                next_sweep = time.monotonic() + (self._interval or float("inf"))
            if self._find_lost is not None and time.monotonic() >= next_lost:
                self._look_for_lost(self._find_lost)
                next_lost = time.monotonic() + self._find_lost_every
            if self._soon:
                self._soon -= 1
                timeout = self._SOON_SECONDS
            else:
                timeout = min(self.PROBE_SECONDS, max(next_sweep - time.monotonic(), 0.0))
            self._woken.wait(timeout)
            self._woken.clear()

    def _orphan_waiting(self) -> bool:
        try:
            return find_orphans(self._spool_dir)
        except Exception:  # noqa: BLE001 - the probe is a shortcut; the sweep still runs
            return False

    def _sweep(self) -> None:
        try:
            report = recover_spool(
                self._spool_dir,
                storage=self._storage,
                attempts=self._attempts,
                backoff=self._backoff,
                backend=self._backend,
                log_format=self._log_format,
                key_template=self._key_template,
            )
        except Exception:  # a sweep must never end the thread
            logger.exception("The sweep of %s failed", self._spool_dir)
            return
        if report.failed:
            logger.warning(
                "%d logs in %s could not be stored yet; next try in %ss",
                len(report.failed),
                self._spool_dir,
                self._interval or "(next start)",
            )

    @staticmethod
    def _look_for_lost(find_lost: Callable[[], object]) -> None:
        try:
            find_lost()
        except Exception:  # a look must never end the thread
            logger.exception("The look for lost runs failed")

    def wake(self) -> None:
        """Sweep soon, and a few times more, because a run's process was just lost."""
        self._soon = self._SOON_SWEEPS
        self._woken.set()

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=30)
