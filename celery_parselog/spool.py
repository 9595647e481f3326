"""The spool folder's contract: a log file, its sidecar manifest, and the lock between them.

Every run writes ``<task id>-<attempt>-<random>.log[.gz]`` and, beside it, the same
name plus ``.json``: a small manifest saying which task the log belongs to and where
it is to be stored. The run holds an exclusive ``flock`` on its log file for as long
as it owns it, so recovery can tell a live run (locked) from an orphan (unlocked)
without guessing from ages or process ids; the kernel drops the lock when a process
dies, however it dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_SUFFIX", "lock_exclusive", "manifest_path", "read_manifest", "write_manifest"]

MANIFEST_SUFFIX = ".json"
MANIFEST_VERSION = 1


def manifest_path(spool: Path) -> Path:
    return spool.with_name(spool.name + MANIFEST_SUFFIX)


def write_manifest(spool: Path, fields: Mapping[str, Any]) -> None:
    """Write a spool file's manifest: directly when it is new, atomically when it replaces one.

    A new manifest is written straight into its place: a rename costs several hundred
    microseconds on some file systems, and a run's first manifest is written while its
    file is locked and younger than recovery's grace period, so no reader acts on it
    half-written. A replacement goes through a temporary file and a rename, so a reader
    sees the old manifest or the new one, never a mix.
    """
    target = manifest_path(spool)
    data = json.dumps({"version": MANIFEST_VERSION, **fields}).encode("utf-8")
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _replace_manifest(target, data)
        return
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


def _replace_manifest(target: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=".manifest-", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_manifest(path: Path) -> dict[str, Any]:
    """Read a manifest. Raises ``OSError`` or ``ValueError`` when it is missing or damaged."""
    with path.open(encoding="utf-8") as stream:
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
