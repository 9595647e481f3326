"""Unit tests for celery_parselog.s3put: a small log on S3 is one plain ``put_object``,
stored exactly as ``S3Storage.save`` would have stored it."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from django.core.files import File
from django.core.files.storage import storages
from s3transfer.manager import TransferManager
from storages.backends.s3 import S3Storage

from celery_parselog.storage import UploadError, store_log
from tests.unit.runs import BUCKET, S3_ALIAS, s3_storage

# What the storage's own rules decide for an object: the fields compared between the two paths.
_RULED_FIELDS = ("ContentType", "ContentEncoding", "CacheControl", "ServerSideEncryption")


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "spool" / "run.log.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"2026-12-03 INFO parsed 12 records\n"))
    return path


@pytest.fixture
def saves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Object keys handed to boto3's transfer manager (what ``S3Storage._save`` uses), in order."""
    seen: list[str] = []
    original = TransferManager.upload

    def counting(
        self: TransferManager, fileobj: Any, bucket: str, key: str, *args: Any, **kwargs: Any
    ) -> Any:
        seen.append(key)
        return original(self, fileobj, bucket, key, *args, **kwargs)

    monkeypatch.setattr(TransferManager, "upload", counting)
    return seen


def _store(path: Path, key: str) -> Any:
    return store_log(path, key, alias=S3_ALIAS, attempts=1, backoff=0)


def _head(key: str) -> dict[str, Any]:
    head = boto3.client("s3", region_name="us-east-1").head_object(Bucket=BUCKET, Key=key)
    return {field: head.get(field) for field in _RULED_FIELDS}


@pytest.fixture
def ruled_s3(tmp_path: Path) -> Iterator[None]:
    with s3_storage(
        tmp_path,
        location="portal",
        default_acl="private",
        object_parameters={"CacheControl": "no-store", "ServerSideEncryption": "AES256"},
    ):
        yield


@pytest.mark.usefixtures("ruled_s3")
def test_a_small_log_skips_the_transfer_manager(log_file: Path, saves: list[str]) -> None:
    """The old path went through ``S3Storage._save`` (``upload_fileobj``) for every log."""
    stored = _store(log_file, "parselog/parse/1.log.gz")

    assert saves == []
    assert stored.key == "parselog/parse/1.log.gz"
    assert stored.uri == f"s3://{BUCKET}/portal/parselog/parse/1.log.gz"
    body = boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=BUCKET, Key="portal/parselog/parse/1.log.gz"
    )["Body"]
    assert body.read() == log_file.read_bytes()


@pytest.mark.usefixtures("ruled_s3")
def test_the_object_keeps_every_rule_save_would_apply(log_file: Path) -> None:
    """Location, content type and encoding, object parameters and ACL: as ``save()`` does."""
    with log_file.open("rb") as stream:
        content = File(stream, name="by-save.log.gz")
        content.content_type = "text/plain; charset=utf-8"  # type: ignore[attr-defined]
        storages[S3_ALIAS].save("compare/by-save.log.gz", content)
    _store(log_file, "compare/by-put.log.gz")

    by_save, by_put = _head("portal/compare/by-save.log.gz"), _head("portal/compare/by-put.log.gz")
    assert by_put == by_save
    assert by_put["ContentType"] == "text/plain; charset=utf-8"
    assert by_put["ContentEncoding"] == "gzip"
    assert by_put["CacheControl"] == "no-store"
    assert by_put["ServerSideEncryption"] == "AES256"
    client = boto3.client("s3", region_name="us-east-1")
    grants = [
        client.get_object_acl(Bucket=BUCKET, Key=f"portal/compare/{name}.log.gz")["Grants"]
        for name in ("by-save", "by-put")
    ]
    assert grants[0] == grants[1]


def test_a_storage_that_keeps_existing_objects_gets_another_name(
    tmp_path: Path, log_file: Path
) -> None:
    """With ``file_overwrite=False`` the storage's own rule picks a free name, as in ``save()``."""
    with s3_storage(tmp_path, file_overwrite=False):
        first = _store(log_file, "parselog/same.log.gz")
        second = _store(log_file, "parselog/same.log.gz")

    assert first.key == "parselog/same.log.gz"
    assert second.key != first.key
    assert second.key.startswith("parselog/same")


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"transfer_config": TransferConfig(multipart_threshold=16)}, id="large"),
        pytest.param({"gzip": True}, id="compressing-storage"),
    ],
)
def test_large_logs_and_compressing_storages_keep_save(
    tmp_path: Path, log_file: Path, saves: list[str], options: dict[str, Any]
) -> None:
    with s3_storage(tmp_path, **options):
        stored = _store(log_file, "parselog/kept.log.gz")

    assert saves == ["parselog/kept.log.gz"]
    assert stored.key == "parselog/kept.log.gz"


class _TaggingStorage(S3Storage):  # type: ignore[misc] # django-storages has no types
    """A project's storage with a ``_save`` of its own, which must keep being called."""

    saved: list[str] = []  # noqa: RUF012 - a test's record, reset by the test

    def _save(self, name: str, content: Any) -> str:
        _TaggingStorage.saved.append(name)
        return str(super()._save(name, content))


class _AuditedStorage(S3Storage):  # type: ignore[misc] # django-storages has no types
    """A project's storage that overrides the public ``save``, which must keep being called."""

    saved: list[str] = []  # noqa: RUF012 - a test's record, reset by the test

    def save(self, name: str, content: Any, max_length: int | None = None) -> str:
        _AuditedStorage.saved.append(name)
        return str(super().save(name, content, max_length))


@pytest.mark.parametrize("storage_class", [_TaggingStorage, _AuditedStorage])
def test_a_storage_with_its_own_save_keeps_it(
    tmp_path: Path, log_file: Path, storage_class: Any
) -> None:
    storage_class.saved = []
    with s3_storage(tmp_path, backend=f"{__name__}.{storage_class.__name__}"):
        _store(log_file, "parselog/own.log.gz")

    assert storage_class.saved == ["parselog/own.log.gz"]


def test_a_missing_bucket_is_a_permanent_upload_error(tmp_path: Path, log_file: Path) -> None:
    with s3_storage(tmp_path, bucket_name="no-such-bucket"), pytest.raises(UploadError) as raised:
        store_log(log_file, "parselog/x.log.gz", alias=S3_ALIAS, attempts=3, backoff=0)

    assert "after 1 attempt:" in str(raised.value)
    assert "NoSuchBucket" in str(raised.value)
