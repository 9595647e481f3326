"""One ``PutObject`` for a small log on django-storages' ``S3Storage``.

``S3Storage.save`` hands every file to boto3's transfer manager (``upload_fileobj``),
which builds a thread pool, futures and a coordinator for each call, so that a large
file can go up in parts. A log of a few kilobytes goes up in one request either way;
on a small machine the machinery around it cost about 2.5 ms of CPU per object in the
package's measurements, more than the rest of a captured run. So a log below the
storage's multipart threshold is sent with one ``put_object`` call, built from the
storage's own rules: its name cleaning and ``location``, its overwrite rule
(``get_available_name``), its ACL, object parameters and content type
(``_get_write_parameters``). Larger logs, storages that compress on save
(``gzip = True``) and subclasses with a ``save`` or ``_save`` of their own keep
``save()``.
"""

from __future__ import annotations

import functools
from typing import Any

from django.core.files import File
from django.core.files.storage import Storage
from django.core.files.utils import validate_file_name

__all__ = ["put_small_object", "takes_small_put"]

# boto3's own default multipart threshold, for a storage that has no transfer config.
_DEFAULT_THRESHOLD = 8 * 1024 * 1024


@functools.lru_cache(maxsize=1)
def _plain_s3_saves() -> tuple[Any, Any] | None:
    """``S3Storage``'s own ``save`` and ``_save``, or ``None`` without django-storages."""
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:
        return None
    return S3Storage.save, S3Storage._save


def takes_small_put(storage: Storage, size: int) -> bool:
    """Whether a log of ``size`` bytes may go to ``storage`` as one ``put_object`` call."""
    plain = _plain_s3_saves()
    kind = type(storage)
    if plain is None or (getattr(kind, "save", None), getattr(kind, "_save", None)) != plain:
        return False
    if getattr(storage, "gzip", False):
        return False
    config = getattr(storage, "transfer_config", None)
    threshold = getattr(config, "multipart_threshold", _DEFAULT_THRESHOLD)
    return size < int(threshold)


def put_small_object(storage: Any, key: str, content: File[bytes]) -> str:
    """Store ``content`` under ``key`` in one request; returns the name saved.

    The name goes through the same steps as in ``Storage.save`` and ``S3Storage._save``:
    validated, made available (the storage's overwrite rule), cleaned and joined to the
    storage's ``location``.
    """
    from storages.utils import clean_name

    validate_file_name(key, allow_relative_path=True)
    name = storage.get_available_name(key)
    validate_file_name(name, allow_relative_path=True)
    cleaned = clean_name(name)
    object_name = storage._normalize_name(cleaned)
    params = storage._get_write_parameters(object_name, content)
    storage.connection.meta.client.put_object(
        Bucket=storage.bucket_name, Key=object_name, Body=content.file, **params
    )
    return str(cleaned)
