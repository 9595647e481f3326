"""Storing orphaned logs: spool files left by failed uploads, killed children or stopped workers.

An orphan is a spool file whose lock nobody holds (see :mod:`celery_parselog.spool`).
Each is uploaded to the key its manifest planned. A run that never reached its end
gets a trailer line, ``-- log incomplete: worker lost --``, and its entry says
``complete: false``. Recovery is idempotent: an orphan is removed only once the
storage confirmed it, and a file being recovered is locked, so several workers
sharing one spool folder never store the same log twice.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from celery.backends.base import Backend

from celery_parselog.metadata import STORED, ResultMetadata
from celery_parselog.records import record_recovered
from celery_parselog.spool import MANIFEST_SUFFIX, lock_exclusive, manifest_path, read_manifest
from celery_parselog.storage import UploadError, store_log
from celery_parselog.tail import tail_paths

__all__ = [
    "CUT_MARKER",
    "INCOMPLETE_TRAILER",
    "INTERRUPTED_TRAILER",
    "RecoveryReport",
    "RecoverySweeper",
    "recover_spool",
]

logger = logging.getLogger("celery_parselog.recovery")

INCOMPLETE_TRAILER = "-- log incomplete: worker lost --"
INTERRUPTED_TRAILER = "-- log incomplete: run interrupted --"
CUT_MARKER = "-- records left out here: the log passed CELERY_PARSELOG_MAX_BYTES --"
# A spool file without a manifest may be a run that is starting right now (its lock
# is taken a moment after the file is created): leave such files alone this long.
_UNNAMED_GRACE_SECONDS = 300
_SPOOL_NAME = re.compile(r"^(?P<task_id>.+)-(?P<attempt>\d+)-[^-]+\.log(?P<gz>\.gz)?$")
# Manifest fields that describe the spool, not the stored log.
_LOCAL_FIELDS = ("version", "hostname", "pid", "spool", "error", "status")

_CHUNK = 1024 * 1024

Progress = Callable[[int, int, str], None]


class _Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass
class RecoveryReport:
    """What one sweep of a spool folder did."""

    stored: list[str] = field(default_factory=list)
    live: int = 0
    removed: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _spool_files(spool_dir: Path) -> list[Path]:
    if not spool_dir.is_dir():
        return []
    files = [
        path
        for path in spool_dir.iterdir()
        if path.name.endswith((".log", ".log.gz")) and not path.name.startswith(".")
    ]
    return sorted(files, key=_mtime)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def recover_spool(
    spool_dir: Path,
    *,
    storage: str,
    attempts: int,
    backoff: float,
    backend: Backend | None = None,
    progress: Progress | None = None,
) -> RecoveryReport:
    """Store every orphan in ``spool_dir``; live runs' files are left alone.

    ``storage`` is used for orphans whose manifest is missing. ``backend``, when
    given, receives the final ``parselog`` entry of each recovered run.
    """
    report = RecoveryReport()
    files = _spool_files(spool_dir)
    for number, path in enumerate(files, start=1):
        try:
            outcome = _recover_file(path, storage, attempts, backoff, backend)
        except UploadError as error:
            report.failed.append((path, str(error)))
            outcome = f"failed: {error}"
        except Exception as error:  # one bad file must not stop the sweep
            logger.exception("Could not recover %s", path)
            report.failed.append((path, f"{type(error).__name__}: {error}"))
            outcome = f"failed: {error}"
        else:
            if outcome == "live":
                report.live += 1
            elif outcome == "removed":
                report.removed += 1
            elif outcome.startswith("stored "):
                report.stored.append(outcome.removeprefix("stored "))
        if progress is not None:
            progress(number, len(files), f"{path.name}: {outcome}")
    _remove_stale_manifests(spool_dir)
    return report


def _recover_file(
    path: Path, storage: str, attempts: int, backoff: float, backend: Backend | None
) -> str:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "gone"
    try:
        if not lock_exclusive(descriptor, wait=False):
            return "live"
        if os.fstat(descriptor).st_nlink == 0:
            return "gone"  # stored and removed by its run while we waited
        manifest = _manifest_or_none(path)
        if manifest is None:
            return _recover_unnamed(path, storage, attempts, backoff, backend)
        return _store(path, manifest, attempts, backoff, backend)
    finally:
        os.close(descriptor)  # releases the lock


def _manifest_or_none(path: Path) -> dict[str, Any] | None:
    try:
        return read_manifest(manifest_path(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("Ignoring the damaged manifest of %s: %s", path, error)
        return None


def _recover_unnamed(
    path: Path, storage: str, attempts: int, backoff: float, backend: Backend | None
) -> str:
    """A spool file without a manifest: its run died before describing it, or is starting."""
    if time.time() - _mtime(path) < _UNNAMED_GRACE_SECONDS:
        return "too new"
    if path.stat().st_size == 0:
        path.unlink(missing_ok=True)
        return "removed"
    match = _SPOOL_NAME.match(path.name)
    task_id = match["task_id"] if match else path.name.split(".")[0]
    attempt = int(match["attempt"]) if match else 1
    suffix = ".log.gz" if path.name.endswith(".gz") else ".log"
    manifest = {
        "task_id": task_id,
        "task_name": "",
        "attempt": attempt,
        "key": f"parselog/recovered/{task_id}-{attempt}{suffix}",
        "storage": storage,
    }
    return _store(path, manifest, attempts, backoff, backend)


def _store(
    path: Path,
    manifest: dict[str, Any],
    attempts: int,
    backoff: float,
    backend: Backend | None,
) -> str:
    finished = bool(manifest.get("finished"))
    upload = path if finished else _with_trailer(path)
    try:
        stored = store_log(
            upload,
            str(manifest["key"]),
            alias=str(manifest["storage"]),
            attempts=attempts,
            backoff=backoff,
            replace=True,
        )
    finally:
        if upload != path:
            upload.unlink(missing_ok=True)
    entry = {key: value for key, value in manifest.items() if key not in _LOCAL_FIELDS}
    entry.update(
        status=STORED,
        key=stored.key,
        uri=stored.uri,
        bytes=stored.bytes,
        sha256=stored.sha256,
        complete=finished and bool(manifest.get("complete", True)),
        recovered=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    )
    if not finished:
        entry["incomplete_reason"] = "worker lost"
    if backend is not None:
        try:
            ResultMetadata().publish(backend, entry)
        except Exception:  # noqa: BLE001 - the log is stored; only its pointer is missing
            logger.warning("Could not record the recovered log %s on its result", stored.key)
    record_recovered({**entry, "hostname": manifest.get("hostname") or ""})
    for leftover in (path, manifest_path(path), *tail_paths(path)):
        leftover.unlink(missing_ok=True)
    logger.info("Recovered %s as %s", path.name, stored.uri)
    return f"stored {stored.key}"


def _with_trailer(path: Path) -> Path:
    """A copy of an unfinished log, readable to its last synced byte, then its kept tail
    (if it had passed the cap) and the trailer."""
    copy = path.with_name(f".recovering-{path.name}")
    # Private like the spool file itself: the log may hold anything the task logged.
    descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with path.open("rb") as source, os.fdopen(descriptor, "wb") as plain:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=plain, mode="wb", compresslevel=6, mtime=0) as target:
                last = _copy_readable_gzip(source, target)
                _finish_copy(path, target, last)
        else:
            last = _copy_plain(source, plain)
            _finish_copy(path, plain, last)
    return copy


def _copy_plain(source: BinaryIO, target: _Writer) -> bytes:
    last = b""
    while chunk := source.read(_CHUNK):
        target.write(chunk)
        last = chunk[-1:]
    return last


def _finish_copy(path: Path, target: _Writer, last: bytes) -> None:
    segments = [segment for segment in tail_paths(path) if segment.exists()]
    if any(segment.stat().st_size for segment in segments):
        target.write(_line(last, CUT_MARKER))
        for segment in segments:
            with segment.open("rb") as source:
                last = _copy_plain(source, target) or last
    target.write(_line(last, INCOMPLETE_TRAILER))


def _copy_readable_gzip(source: BinaryIO, target: _Writer) -> bytes:
    """Decompress what a cut-short or damaged gzip stream holds (a killed writer leaves no
    end; a crashed machine may leave zeros). Everything before the first bad byte is kept.

    Returns the last byte written, so the trailer can start on a line of its own.
    """
    decompressor = zlib.decompressobj(wbits=31)
    last = b""
    while chunk := source.read(_CHUNK):
        outputs, damaged = _decompress_until_damage(decompressor, chunk, _CHUNK)
        for output in outputs:
            if output:
                target.write(output)
                last = output[-1:]
        if damaged:
            break
    return last


def _decompress_until_damage(
    decompressor: Any, data: bytes, piece: int
) -> tuple[list[bytes], bool]:
    """Feed ``data`` in pieces; where a piece fails, go over it again in smaller pieces
    (from a copy taken before it), down to single bytes. Returns the outputs and
    whether damage was found."""
    outputs: list[bytes] = []
    for start in range(0, len(data), piece):
        part = data[start : start + piece]
        before = decompressor.copy()
        try:
            outputs.append(decompressor.decompress(part))
        except zlib.error:
            if piece > 1:
                more, _ = _decompress_until_damage(before, part, max(piece // 64, 1))
                outputs.extend(more)
            return outputs, True
    return outputs, False


def _line(last: bytes, text: str) -> bytes:
    """``text`` as a line of its own, after whatever the log's last byte was."""
    prefix = b"" if last in (b"", b"\n") else b"\n"
    return prefix + text.encode() + b"\n"


def _remove_stale_manifests(spool_dir: Path) -> None:
    """Manifests and tail segments whose log is gone, and stale working copies."""
    if not spool_dir.is_dir():
        return
    for extra in [*spool_dir.glob(f"*{MANIFEST_SUFFIX}"), *spool_dir.glob("*.tail-[01]")]:
        log = extra.with_name(extra.name.rsplit(".", 1)[0])
        if not log.exists() and time.time() - _mtime(extra) > _UNNAMED_GRACE_SECONDS:
            extra.unlink(missing_ok=True)
    # Working copies of a process that died while writing them.
    for working in [*spool_dir.glob(".manifest-*"), *spool_dir.glob(".recovering-*")]:
        if time.time() - _mtime(working) > _UNNAMED_GRACE_SECONDS:
            working.unlink(missing_ok=True)


class RecoverySweeper(threading.Thread):
    """Sweeps a worker's spool folder: when it starts, every ``interval`` seconds, and soon
    after a child process was lost (killed, out of memory, hard time limit, revoked with
    ``terminate=True``), so such a run's log reaches storage without anyone stepping in.

    Runs in the worker's main process, which survives its children.
    """

    _SOON_SECONDS = 1.0
    _SOON_SWEEPS = 5  # the lost child may still be exiting: look again a few times

    def __init__(
        self,
        spool_dir: Path,
        *,
        storage: str,
        attempts: int,
        backoff: float,
        backend: Backend | None,
        interval: float,
    ) -> None:
        super().__init__(name="celery-parselog-recovery", daemon=True)
        self._storage = storage
        self._attempts = attempts
        self._backoff = backoff
        self._backend = backend
        self._spool_dir = spool_dir
        self._interval = interval
        self._woken = threading.Event()
        self._stopped = threading.Event()
        self._soon = 0

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                report = recover_spool(
                    self._spool_dir,
                    storage=self._storage,
                    attempts=self._attempts,
                    backoff=self._backoff,
                    backend=self._backend,
                )
            except Exception:  # a sweep must never end the thread
                logger.exception("The sweep of %s failed", self._spool_dir)
            else:
                if report.failed:
                    logger.warning(
                        "%d logs in %s could not be stored yet; next try in %ss",
                        len(report.failed),
                        self._spool_dir,
                        self._interval or "(next start)",
                    )
            if self._soon:
                self._soon -= 1
                timeout: float | None = self._SOON_SECONDS
            else:
                timeout = self._interval or None
            self._woken.wait(timeout)
            self._woken.clear()

    def wake(self) -> None:
        """Sweep soon, and a few times more, because a run's process was just lost."""
        self._soon = self._SOON_SWEEPS
        self._woken.set()

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=30)
