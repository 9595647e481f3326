"""Attacks on the spool folder by another local user: each is refused, nothing leaks.

The attacker's steps run in a forked child that has switched to ``nobody``; the
worker's side (capture, recovery) runs as the test's own user. CI runs the tests as
root, which is what makes the switch possible; elsewhere these tests are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.test import override_settings

from celery_parselog.recovery import recover_spool
from celery_parselog.spool import SpoolFolderError, create_spool_file, manifest_path
from tests.unit.test_recovery import failed_upload_orphan, killed_orphan

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def rewrite_manifest(path: Path, **fields: object) -> None:
    """Change fields of the manifest of spool file ``path``, as an attacker with write access
    to the spool folder could."""
    data = json.loads(manifest_path(path).read_text())
    data.update(fields)
    manifest_path(path).write_text(json.dumps(data))


def as_attacker(step: Callable[[], None]) -> None:
    """Run ``step`` as another user (``nobody``), in a child process; fail if it fails."""
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            step()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the attacker's step failed"


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder any user may create in, like /tmp (sticky, world-writable)."""
    base = Path(tempfile.mkdtemp(prefix="parselog-attack-"))
    base.chmod(0o1777)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file of the worker's user that must never be read into storage."""
    path = tmp_path / "credentials"
    path.write_text("aws_secret_access_key = do-not-leak\n")
    return path


@pytest.fixture(autouse=True)
def _keys_under_recovery_tests(tmp_path: Path) -> Iterator[None]:
    """Runs' keys live under ``recovery-tests/``; static files (a storage an attacker would
    like to write to) have a folder of this test's own."""
    with override_settings(
        CELERY_PARSELOG_KEY="recovery-tests/{task_id}-{attempt}.log",
        STATIC_ROOT=str(tmp_path / "static"),
    ):
        yield


def stored_names(folder: str) -> set[str]:
    """Every stored name under ``folder`` of the default storage, recursively."""
    storage = storages["default"]
    if not storage.exists(folder):
        return set()
    found: set[str] = set()
    folders, files = storage.listdir(folder)
    found.update(f"{folder}/{name}" for name in files)
    for sub in folders:
        found |= stored_names(f"{folder}/{sub}")
    return found


def sweep(folder: Path) -> object:
    return recover_spool(folder, storage="default", attempts=1, backoff=0)


def test_precreated_world_writable_folder_is_refused(shared_tmp: Path, secret: Path) -> None:
    """Another user pre-creates the spool folder 0777 and plants a link to the worker's
    credentials with a finished manifest: capture refuses the folder, recovery refuses to
    sweep it, and nothing is stored."""
    folder = shared_tmp / "celery-parselog"
    name = "5b0c7f2e-1-abcdef0123.log"

    def plant() -> None:
        folder.mkdir()
        folder.chmod(0o777)
        (folder / name).symlink_to(secret)
        (folder / (name + ".json")).write_text(
            json.dumps(
                {
                    "task_id": "5b0c7f2e",
                    "attempt": 1,
                    "key": "stolen/x.log",
                    "storage": "default",
                    "finished": "2026-01-01T00:00:00+00:00",
                }
            )
        )

    as_attacker(plant)
    with pytest.raises(SpoolFolderError, match=str(folder)):
        create_spool_file(folder, "task", 1, compressed=True)
    report = recover_spool(folder, storage="default", attempts=1, backoff=0)
    assert [str(path) for path, _ in report.refused] == [str(folder)]
    assert str(folder) in report.refused[0][1]
    assert report.stored == []
    assert stored_names("stolen") == set()
    assert (folder / name).is_symlink()  # left untouched


def test_symlinked_spool_file_is_not_read(spool_dir: Path, secret: Path) -> None:
    """A spool file that is a link to a file outside the folder is refused, naming it."""
    planted = spool_dir / "5b0c7f2e-1-abcdef0123.log"
    planted.symlink_to(secret)
    manifest_path(planted).write_text(
        json.dumps(
            {
                "task_id": "5b0c7f2e",
                "attempt": 1,
                "storage": "default",
                "key": "recovery-tests/5b0c7f2e-1.log",
                "finished": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    report = recover_spool(spool_dir, storage="default", attempts=1, backoff=0)
    assert [path for path, _ in report.refused] == [planted]
    assert planted.name in report.refused[0][1]
    assert not storages["default"].exists("recovery-tests/5b0c7f2e-1.log")


def test_file_of_another_user_is_not_read(tmp_path: Path) -> None:
    """A spool file owned by another uid is refused."""
    spool_dir = tmp_path / "spool"
    path, key, _ = failed_upload_orphan(spool_dir, compressed=False)
    os.chown(path, NOBODY, NOBODY)
    report = recover_spool(spool_dir, storage="default", attempts=1, backoff=0)
    assert [refused for refused, _ in report.refused] == [path]
    assert not storages["default"].exists(key)


@pytest.mark.parametrize(
    ("storage", "key"),
    [
        ("staticfiles", "admin/js/core.js"),
        ("default", "admin/js/core.js"),
        ("default", "recovery-tests/../../etc/x-1.log"),
        ("default", "/recovery-tests/abs-1.log"),
    ],
)
def test_manifest_cannot_choose_the_storage_or_leave_the_prefix(
    tmp_path: Path, storage: str, key: str
) -> None:
    """A manifest naming another storage is stored in the configured one; a key outside the
    configured prefix, climbing or absolute, is refused and nothing is written anywhere."""
    spool_dir = tmp_path / "spool"
    path, _, _ = failed_upload_orphan(spool_dir, compressed=False)
    rewrite_manifest(path, storage=storage, key=key)
    before = stored_names("admin")
    report = recover_spool(spool_dir, storage="default", attempts=1, backoff=0)
    assert [refused for refused, _ in report.refused] == [path]
    assert stored_names("admin") == before
    assert path.exists()
    assert not storages["staticfiles"].exists("admin/js/core.js")


def test_manifest_storage_is_ignored_for_a_good_key(tmp_path: Path) -> None:
    """A manifest's storage field is never used: the log goes to the configured storage."""
    spool_dir = tmp_path / "spool"
    path, planned, _ = failed_upload_orphan(spool_dir, compressed=False)
    rewrite_manifest(path, storage="staticfiles")
    report = recover_spool(spool_dir, storage="default", attempts=1, backoff=0)
    assert report.stored == [planned]
    assert storages["default"].exists(planned)
    assert not storages["staticfiles"].exists(planned)


def test_swapped_manifest_of_a_real_failed_upload_is_refused(tmp_path: Path) -> None:
    """The manifest of a real failed upload swapped for one naming another run's key: the
    log is not sent there, and stays in the spool folder."""
    spool_dir = tmp_path / "spool"
    path, planned, _ = failed_upload_orphan(spool_dir, compressed=False)
    rewrite_manifest(path, key="recovery-tests/someone-else-1.log")
    report = recover_spool(spool_dir, storage="default", attempts=1, backoff=0)
    assert [refused for refused, _ in report.refused] == [path]
    assert not storages["default"].exists("recovery-tests/someone-else-1.log")
    assert not storages["default"].exists(planned)
    assert path.exists()


def test_planted_recovering_link_is_not_written_through(tmp_path: Path, secret: Path) -> None:
    """A `.recovering-*` link planted beside a killed run's log: recovery makes its working
    copy anew, the link's target keeps its content, and the log is stored."""
    spool_dir = tmp_path / "spool"
    path, key, _ = killed_orphan(spool_dir, compressed=True)
    (spool_dir / f".recovering-{path.name}").symlink_to(secret)
    original = secret.read_text()
    report = recover_spool(spool_dir, storage="default", attempts=1, backoff=0)
    assert report.stored == [key]
    assert secret.read_text() == original


def test_existing_object_not_written_by_the_run_is_kept(tmp_path: Path) -> None:
    """A forged "checkpointed" manifest cannot replace an object: the existing one stays and
    the recovered log is stored beside it."""
    spool_dir = tmp_path / "spool"
    path, key, _ = killed_orphan(spool_dir, compressed=False)
    storages["default"].save(key, __import__("io").BytesIO(b"someone else's object\n"))
    rewrite_manifest(path, checkpoint="2026-01-01T00:00:00+00:00", checkpoint_sha256="0" * 64)
    report = recover_spool(spool_dir, storage="default", attempts=1, backoff=0)
    with storages["default"].open(key, "rb") as stream:
        assert stream.read() == b"someone else's object\n"
    assert len(report.stored) == 1
    assert report.stored[0] != key
    assert "-recovered-" in report.stored[0]
