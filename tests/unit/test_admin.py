"""Unit tests for celery_parselog.admin through Django's test client: access, download,
preview, the compare page and the compare action."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.storage import storages
from django.test import Client, override_settings
from django.urls import reverse

from celery_parselog import preview as preview_module
from celery_parselog.models import TaskLog
from celery_parselog.records import record_finished, record_started
from tests.unit.runs import (
    BASE_TIME,
    BUCKET,
    S3_ALIAS,
    counting_reads,
    final_entry,
    log_lines,
    pending_entry,
    s3_storage,
    stored_run,
)

pytestmark = pytest.mark.django_db

A_ID = "11111111-2222-4333-8444-555555555555"
B_ID = "66666666-7777-4888-9999-aaaaaaaaaaaa"
CHANGELIST = "admin:celery_parselog_tasklog_changelist"


def staff(username: str, *codenames: str) -> User:
    """A staff user with the given celery_parselog permissions."""
    user: User = User.objects.create_user(username, is_staff=True)
    for codename in codenames:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="celery_parselog", codename=codename)
        )
    return user


def client_for(user: User | None) -> Client:
    """A test client, logged in as ``user`` unless None."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def viewer() -> Client:
    """A client of staff allowed to view task logs."""
    return client_for(staff("viewer", "view_tasklog"))


@pytest.fixture
def run() -> TaskLog:
    """A stored run of subject 7."""
    with override_settings(CELERY_PARSELOG_SUBJECT="{data_file_id}"):
        return stored_run(
            log_lines(A_ID, [f"app|INFO|row {n}" for n in range(1, 121)]), task_id=A_ID
        )


def pages(row: TaskLog, other: TaskLog | None = None) -> dict[str, str]:
    """Every admin page of task logs, by name."""
    other = other or row
    return {
        "list": reverse(CHANGELIST),
        "detail": reverse("admin:celery_parselog_tasklog_change", args=[row.pk]),
        "download": reverse("admin:celery_parselog_tasklog_download", args=[row.pk]),
        "compare": reverse("admin:celery_parselog_tasklog_compare") + f"?a={row.pk}&b={other.pk}",
        "history": reverse("admin:celery_parselog_tasklog_history", args=[row.pk]),
    }


# -- access ------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(run: TaskLog) -> None:
    """Every page and the download redirect anonymous users to the admin's login."""
    client = client_for(None)
    for name, url in pages(run).items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("admin:login") + "?next="), name


@pytest.mark.parametrize("codenames", [(), ("change_tasklog",), ("delete_tasklog",)])
def test_staff_without_the_view_permission_get_403(run: TaskLog, codenames: tuple[str]) -> None:
    """Staff lacking view_tasklog get 403 everywhere, even with change or delete permission."""
    client = client_for(staff("nobody", *codenames))
    for name, url in pages(run).items():
        assert client.get(url).status_code == 403, name


def test_staff_with_the_view_permission_see_every_page(run: TaskLog, viewer: Client) -> None:
    """With view_tasklog, the list, the detail page, history, compare and download answer."""
    for name, url in pages(run).items():
        assert viewer.get(url).status_code == 200, name


def test_rows_cannot_be_added_or_changed(run: TaskLog, viewer: Client) -> None:
    """Nobody adds or changes rows in the admin, not even a superuser."""
    admin_user = User.objects.create_superuser("root")
    for client in (viewer, client_for(admin_user)):
        assert client.get(reverse("admin:celery_parselog_tasklog_add")).status_code == 403
        detail = pages(run)["detail"]
        response = client.post(detail, {"subject": "changed"})
        assert response.status_code == 403
    run.refresh_from_db()
    assert run.subject == "7"


def test_only_superusers_delete_and_the_stored_log_stays(run: TaskLog) -> None:
    """Staff with delete permission cannot delete; a superuser deletes the row, not the log."""
    delete_url = reverse("admin:celery_parselog_tasklog_delete", args=[run.pk])
    assert (
        client_for(staff("deleter", "view_tasklog", "delete_tasklog")).get(delete_url).status_code
        == 403
    )
    superuser = client_for(User.objects.create_superuser("root"))
    response = superuser.post(delete_url, {"post": "yes"})
    assert response.status_code == 302
    assert not TaskLog.objects.filter(pk=run.pk).exists()
    assert storages["default"].exists(run.key)


# -- the list ----------------------------------------------------------------------


def test_the_list_filters_and_searches(viewer: Client) -> None:
    """The list filters by state and upload status and searches task ids and subjects."""
    with override_settings(CELERY_PARSELOG_SUBJECT="file-{data_file_id}"):
        stored_run("x\n", task_id=A_ID, subject_arguments={"data_file_id": 7})
        stored_run("y\n", task_id=B_ID, subject_arguments={"data_file_id": 8}, task_state="FAILURE")
    url = reverse(CHANGELIST)

    def shown(**query: str) -> set[str]:
        content = viewer.get(url, query).content.decode()
        return {task_id for task_id in (A_ID, B_ID) if task_id in content}

    assert shown() == {A_ID, B_ID}
    assert shown(state="failed") == {B_ID}
    assert shown(upload_status="stored") == {A_ID, B_ID}
    assert shown(task_name="tests.parse") == {A_ID, B_ID}
    assert shown(q="file-7") == {A_ID}
    assert shown(q=B_ID[:13]) == {B_ID}
    content = viewer.get(url).content.decode()
    for filter_name in ("task_name", "state", "upload_status", "started"):
        assert f"?{filter_name}" in content or f"{filter_name}__" in content


# -- the detail page ---------------------------------------------------------------


def test_detail_page_previews_the_first_and_last_lines(run: TaskLog, viewer: Client) -> None:
    """The detail page shows the first and last PREVIEW_LINES lines and what lies between."""
    with override_settings(CELERY_PARSELOG_PREVIEW_LINES=10):
        content = viewer.get(pages(run)["detail"]).content.decode()
    assert "row 1</span>" in content
    assert "row 10</span>" in content
    assert "row 11</span>" not in content
    assert "row 111</span>" in content
    assert "row 120</span>" in content
    assert "… 100 lines not shown …" in content
    assert pages(run)["download"] in content


def test_detail_page_never_reads_past_the_bound(viewer: Client) -> None:
    """Showing a big compressed log's page reads no more than the preview's head bound."""
    text = "".join(
        f"{n:08d} {n * 2654435761 % 2**32:08x} {n * 40503 % 65536:04x}\n" for n in range(200_000)
    )
    row = stored_run(text, task_id=A_ID)
    assert row.bytes is not None and row.bytes > 64 * 1024
    with (
        counting_reads() as read,
        override_settings(CELERY_PARSELOG_PREVIEW_LINES=20),
        _Bounds(head=16 * 1024, tail=64 * 1024),
    ):
        content = viewer.get(pages(row)["detail"]).content.decode()
    assert 0 < read[0] <= 16 * 1024
    assert "00000019 " in content
    assert "The last lines are not shown" in content


def test_a_failed_upload_has_no_preview_or_download(viewer: Client) -> None:
    """A run whose upload failed says so, with no download link."""
    record_started(
        pending_entry(A_ID), task_name="tests.parse", hostname="h", arguments={}, args=[], kwargs={}
    )
    row = record_finished(final_entry(A_ID, status="failed", error="S3 down"), first_error=None)
    assert row is not None
    content = viewer.get(pages(row)["detail"]).content.decode()
    assert "its upload failed" in content
    assert pages(row)["download"] not in content
    assert viewer.get(pages(row)["download"]).status_code == 404


def test_detail_links_to_the_comparison_with_the_previous_run_of_its_subject(
    viewer: Client,
) -> None:
    """A run's page links to comparing it with the run of its subject just before it."""
    with override_settings(CELERY_PARSELOG_SUBJECT="{data_file_id}"):
        first = stored_run("a\n", task_id=A_ID)
        second = stored_run("b\n", task_id=B_ID, started=BASE_TIME + timedelta(hours=1))
        stored_run("c\n", subject_arguments={"data_file_id": 8})
    later = viewer.get(pages(second)["detail"]).content.decode()
    compare = reverse("admin:celery_parselog_tasklog_compare")
    assert f'href="{compare}?a={first.pk}&amp;b={second.pk}"' in later
    earlier = viewer.get(pages(first)["detail"]).content.decode()
    assert compare not in earlier


# -- download ----------------------------------------------------------------------


def test_download_streams_a_file_system_log(run: TaskLog, viewer: Client) -> None:
    """A log on FileSystemStorage is streamed through Django as an attachment."""
    response = viewer.get(pages(run)["download"])
    assert response.status_code == 200
    assert response.streaming
    filename = run.key.rsplit("/", 1)[-1]
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response["Content-Type"] == "application/gzip"
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert gzip.decompress(body).decode().splitlines()[0].endswith("app: row 1")


def test_download_of_a_purged_log_is_404(run: TaskLog, viewer: Client) -> None:
    """A row whose object is gone gives 404, not a server error."""
    storages["default"].delete(run.key)
    assert viewer.get(pages(run)["download"]).status_code == 404


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[None]:
    """The ``s3`` storage alias on moto."""
    with s3_storage(tmp_path):
        yield


def _expires_in(query: dict[str, list[str]]) -> float:
    """Seconds a presigned URL stays valid: SigV4 says it, SigV2 gives the end as a time."""
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()


@pytest.mark.usefixtures("s3")
def test_download_from_s3_redirects_to_a_short_lived_presigned_url(viewer: Client) -> None:
    """A log on S3 is a redirect to a presigned URL that expires after DOWNLOAD_EXPIRY.

    The object has ``Content-Encoding: gzip``, which browsers undo as they save it, so
    the URL names the file ``….log`` and says it is text."""
    row = stored_run(log_lines(A_ID, ["app|INFO|x"]), task_id=A_ID, alias=S3_ALIAS)
    for expiry in (300, 45):
        with override_settings(CELERY_PARSELOG_DOWNLOAD_EXPIRY=expiry):
            response = viewer.get(pages(row)["download"])
        assert response.status_code == 302
        location = urlsplit(response["Location"])
        query = parse_qs(location.query)
        assert BUCKET in location.netloc + location.path
        assert location.path.endswith(row.key)
        assert _expires_in(query) == pytest.approx(expiry, abs=5)
        assert "X-Amz-Signature" in query or "Signature" in query
        filename = row.key.rsplit("/", 1)[-1].removesuffix(".gz")
        assert filename.endswith(".log")
        assert query["response-content-disposition"] == [f'attachment; filename="{filename}"']
        assert query["response-content-type"] == ["text/plain; charset=utf-8"]
    storages[S3_ALIAS].delete(row.key)
    assert viewer.get(pages(row)["download"]).status_code == 404


@pytest.mark.usefixtures("s3")
def test_s3_detail_page_previews_without_downloading(viewer: Client) -> None:
    """The detail page of a log on S3 shows its lines through a streamed read."""
    from unittest import mock

    from storages.backends.s3 import S3File

    row = stored_run(log_lines(A_ID, ["app|INFO|hello s3"]), task_id=A_ID, alias=S3_ALIAS)
    with mock.patch.object(S3File, "_get_file", side_effect=AssertionError("whole download")):
        content = viewer.get(pages(row)["detail"]).content.decode()
    assert "app: hello s3" in content


# -- comparing ---------------------------------------------------------------------


def test_compare_page_shows_summary_counts_and_diff(viewer: Client) -> None:
    """The compare page has the side-by-side summary, both count tables and the diff."""
    a = stored_run(
        log_lines(A_ID, ["app|INFO|start", "parsers|WARNING|bad record 3"]), task_id=A_ID
    )
    b = stored_run(log_lines(B_ID, ["app|INFO|start", "parsers|ERROR|bad file"]), task_id=B_ID)
    content = viewer.get(pages(a, b)["compare"]).content.decode()
    assert 'id="parselog-summary"' in content
    assert 'id="parselog-levels"' in content
    assert 'id="parselog-loggers"' in content
    assert '<span class="del">-&lt;time&gt; WARNING parsers: bad record 3</span>' in content
    assert '<span class="add">+&lt;time&gt; ERROR parsers: bad file</span>' in content
    assert f"?a={b.pk}&amp;b={a.pk}" in content  # swap link


def test_compare_page_of_identical_runs_says_so(viewer: Client) -> None:
    """Runs equal once normalized are reported as the same, with no diff."""
    a = stored_run(log_lines(A_ID, ["app|INFO|same {id}"]), task_id=A_ID)
    b = stored_run(log_lines(B_ID, ["app|INFO|same {id}"]), task_id=B_ID)
    content = viewer.get(pages(a, b)["compare"]).content.decode()
    assert 'id="parselog-identical"' in content
    assert 'id="parselog-diff"' not in content


def test_compare_page_with_bad_input(run: TaskLog, viewer: Client) -> None:
    """Missing or malformed run ids send the user back to the list; unknown ones are 404."""
    base = reverse("admin:celery_parselog_tasklog_compare")
    for query in ("", "?a=1", f"?a={run.pk}&b=x"):
        response = viewer.get(base + query)
        assert response.status_code == 302
        assert response["Location"] == reverse(CHANGELIST)
    assert viewer.get(base + f"?a={run.pk}&b=999999").status_code == 404


def test_compare_action_redirects_for_exactly_two_runs(viewer: Client) -> None:
    """The action compares the two selected runs, earlier as A; other counts get a warning."""
    a = stored_run("a\n", task_id=A_ID)
    b = stored_run("b\n", task_id=B_ID, started=BASE_TIME + timedelta(minutes=5))
    c = stored_run("c\n", started=BASE_TIME + timedelta(minutes=9))
    url = reverse(CHANGELIST)

    def act(*rows: TaskLog) -> Any:
        data = {"action": "compare_selected", "_selected_action": [r.pk for r in rows]}
        return viewer.post(url, data)

    response = act(b, a)
    assert response.status_code == 302
    assert response["Location"] == pages(a, b)["compare"]
    for rows in ((a,), (a, b, c)):
        response = act(*rows)
        assert response.status_code == 302
        assert response["Location"] == url
        followed = viewer.get(url).content.decode()
        assert "Select exactly two runs to compare them." in followed


def test_the_compare_action_is_offered_and_delete_is_not_to_viewers(
    run: TaskLog, viewer: Client
) -> None:
    """Viewers see the compare action and not the delete action."""
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert re.search(r'<option value="compare_selected"', content)
    assert 'value="delete_selected"' not in content


class _Bounds:
    """Lower the preview's byte bounds for a test."""

    def __init__(self, *, head: int, tail: int) -> None:
        from unittest import mock

        self._patches = [
            mock.patch.object(preview_module, "HEAD_MAX_BYTES", head),
            mock.patch.object(preview_module, "TAIL_MAX_BYTES", tail),
        ]

    def __enter__(self) -> None:
        for patch in self._patches:
            patch.start()

    def __exit__(self, *exc: object) -> None:
        for patch in self._patches:
            patch.stop()
