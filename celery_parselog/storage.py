"""Storing a finished log through Django's storage API, and naming where it went.

Only ``storages[alias].save()`` is used, so any Django storage works; with
django-storages' ``S3Storage`` and its default ``file_overwrite=True`` that is a
single PUT for a log below the multipart threshold, with no HEAD, GET or LIST.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

__all__ = ["StoredLog", "UploadError", "storage_uri", "store_log"]

logger = logging.getLogger("celery_parselog.storage")

CONTENT_TYPE = "text/plain; charset=utf-8"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredLog:
    """A log that the storage confirmed: its final name, stable URI, size and digest."""

    key: str
    uri: str
    bytes: int
    sha256: str


class UploadError(Exception):
    """Every attempt to store a log failed; the spool file is kept."""


def _digest(path: Path) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _is_s3(storage: Storage) -> bool:
    # Checked by module rather than isinstance, so django-storages stays optional.
    return any(cls.__module__.startswith("storages.backends.s3") for cls in type(storage).__mro__)


def storage_uri(storage: Storage, alias: str, key: str) -> str:
    """A stable, credential-free address of a stored object.

    ``s3://bucket/key`` for S3, ``file://`` for the file system, and
    ``storage://alias/key`` for other storages. Never a presigned URL.
    """
    if _is_s3(storage):
        bucket: str = getattr(storage, "bucket_name", "") or ""
        location = str(getattr(storage, "location", "") or "").strip("/")
        return f"s3://{bucket}/{location + '/' if location else ''}{key}"
    if isinstance(storage, FileSystemStorage):
        # storage.path() is already absolute; resolving links would cost syscalls per run.
        return Path(storage.path(key)).as_uri()
    return f"storage://{alias}/{key}"


def store_log(
    path: Path, key: str, *, alias: str, attempts: int, backoff: float, replace: bool = False
) -> StoredLog:
    """Upload one spool file under ``key``, trying up to ``attempts`` times.

    Raises :class:`UploadError` when every attempt fails. The name the storage
    returns is the one recorded (a storage may alter it to avoid overwriting).
    ``replace`` deletes an earlier object at ``key`` first (a checkpoint, or a
    recovery that ran before), since storages such as ``FileSystemStorage`` would
    otherwise store beside it under another name; it costs one more request.
    """
    size, sha256 = _digest(path)
    last_error: BaseException | None = None
    for attempt in range(1, attempts + 1):
        try:
            storage = storages[alias]
            if replace:
                storage.delete(key)
            with path.open("rb") as stream:
                content: Any = File(stream, name=key)
                # Read by S3Storage when choosing the object's Content-Type; the
                # ``.gz`` suffix makes it add ``Content-Encoding: gzip`` itself.
                content.content_type = CONTENT_TYPE
                stored_key = storage.save(key, content)
            return StoredLog(
                key=stored_key,
                uri=storage_uri(storage, alias, stored_key),
                bytes=size,
                sha256=sha256,
            )
        except Exception as error:  # noqa: BLE001 - storages raise anything, from any SDK
            last_error = error
            logger.warning(
                "Upload attempt %d of %d for %s failed: %s",
                attempt,
                attempts,
                key,
                _describe(error),
            )
            if attempt < attempts:
                time.sleep(backoff * 2 ** (attempt - 1))
    raise UploadError(f"could not store {key} after {attempts} attempts: {_describe(last_error)}")


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"
