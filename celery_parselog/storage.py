"""Storing a finished log through Django's storage API, and naming where it went.

Any Django storage works: logs go through ``storages[alias].save()``, except that a
log below the multipart threshold of django-storages' ``S3Storage`` goes up as one
``put_object`` built from the storage's own rules (see :mod:`celery_parselog.s3put`).
With the default ``file_overwrite=True`` either way is a single PUT, with no HEAD,
GET or LIST.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from celery_parselog.s3put import put_small_object, takes_small_put
from celery_parselog.streams import CHUNK

__all__ = [
    "StoredLog",
    "UploadError",
    "digest",
    "is_permanent",
    "is_s3",
    "overwrites_in_place",
    "storage_uri",
    "store_log",
]

logger = logging.getLogger("celery_parselog.storage")

CONTENT_TYPE = "text/plain; charset=utf-8"
# S3 error codes that no retry can mend: the request is refused for what it is.
_PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "NoSuchBucket",
        "SignatureDoesNotMatch",
        "AccountProblem",
        "InvalidObjectState",
    }
)


@dataclass(frozen=True)
class StoredLog:
    """A log that the storage confirmed: its final name, stable URI, size and digest."""

    key: str
    uri: str
    bytes: int
    sha256: str


class UploadError(Exception):
    """Every attempt to store a log failed; the spool file is kept."""


def digest(stream: Any) -> tuple[int, str]:
    """Size and sha256 of what a binary stream holds from where it stands."""
    sha = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


def is_permanent(error: BaseException) -> bool:
    """Whether an upload error is one that trying again cannot mend.

    Access refused, a missing bucket, bad credentials, a name the storage rejects:
    retrying those only holds the worker up. Anything else (timeouts, connection
    errors, throttling, 5xx) is taken as transient.
    """
    if isinstance(error, (PermissionError, SuspiciousOperation)):
        return True
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        return code in _PERMANENT_CODES
    return False


def overwrites_in_place(storage: Storage) -> bool:
    """Whether ``save()`` under an existing name replaces the object (no delete needed).

    ``S3Storage`` does with its default ``file_overwrite=True``, and Django's
    ``FileSystemStorage`` with ``allow_overwrite=True`` (Django 5.1 and newer); others
    would store beside the existing object under another name.
    """
    return bool(getattr(storage, "file_overwrite", False)) or bool(
        getattr(storage, "allow_overwrite", False)
    )


def is_s3(storage: Storage) -> bool:
    # Checked by module rather than isinstance, so django-storages stays optional.
    return any(cls.__module__.startswith("storages.backends.s3") for cls in type(storage).__mro__)


def storage_uri(storage: Storage, alias: str, key: str) -> str:
    """A stable, credential-free address of a stored object.

    ``s3://bucket/key`` for S3, ``file://`` for the file system, and
    ``storage://alias/key`` for other storages. Never a presigned URL.
    """
    if is_s3(storage):
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

    Raises :class:`UploadError` when every attempt fails, or at once for an error no
    retry can mend (see :func:`is_permanent`). Between attempts it waits ``backoff``
    seconds, doubled each time, with ±50 % jitter so workers that failed together do
    not retry together: at most ``1.5 * backoff * (2 ** (attempts - 1) - 1)`` seconds in
    all (4.5 s with the defaults). The name the storage returns is the one recorded (a
    storage may alter it to avoid overwriting).

    ``replace`` means an object this run stored earlier (its checkpoint) is to be
    replaced. Storages that overwrite in place get a plain ``save()``, so readers never
    see the key missing; others get a delete first, as they would otherwise store
    beside it under another name.
    """
    with path.open("rb") as stream:  # one open for the digest and every attempt
        size, sha256 = digest(stream)
        last_error: BaseException | None = None
        tried = 0
        for attempt in range(1, attempts + 1):
            tried = attempt
            try:
                storage = storages[alias]
                if replace and not overwrites_in_place(storage):
                    storage.delete(key)
                stream.seek(0)
                content: Any = File(stream, name=key)
                # Read by S3Storage when choosing the object's Content-Type; the
                # ``.gz`` suffix makes it add ``Content-Encoding: gzip`` itself.
                content.content_type = CONTENT_TYPE
                if takes_small_put(storage, size):
                    stored_key = put_small_object(storage, key, content)
                else:
                    stored_key = storage.save(key, content)
                return StoredLog(
                    key=stored_key,
                    uri=storage_uri(storage, alias, stored_key),
                    bytes=size,
                    sha256=sha256,
                )
            except Exception as error:  # noqa: BLE001 - storages raise anything, from any SDK
                last_error = error
                permanent = is_permanent(error)
                logger.warning(
                    "Upload attempt %d of %d for %s failed%s: %s",
                    attempt,
                    attempts,
                    key,
                    " (not retried: no retry can mend it)" if permanent else "",
                    _describe(error),
                )
                if permanent:
                    break
                if attempt < attempts:
                    time.sleep(backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
        raise UploadError(
            f"could not store {key} after {tried} attempt{'s' if tried > 1 else ''}: "
            f"{_describe(last_error)}"
        )


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"
