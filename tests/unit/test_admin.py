"""Unit tests for celery_parselog.admin through Django's test client: access, download,
preview, the compare page and the compare action."""

from __future__ import annotations

import gzip
import io
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
from tests.unit.runs import (
    A_ID,
    B_ID,
    BASE_TIME,
    BUCKET,
    S3_ALIAS,
    counting_reads,
    failed_run,
    log_lines,
    s3_storage,
    stored_run,
)

pytestmark = pytest.mark.django_db

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
        # The rows the change list shows, read from its context (the page's markup of a
        # row differs between Django versions).
        rows = viewer.get(url, query).context["cl"].result_list
        return {row.task_id for row in rows} & {A_ID, B_ID}

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
    row = failed_run(A_ID)
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


# -- the list's columns, filters and links out ---------------------------------------


def _row_with(task_id: str, text: str, **kwargs: Any) -> TaskLog:
    with override_settings(CELERY_PARSELOG_SUBJECT="{data_file_id}"):
        return stored_run(text, task_id=task_id, **kwargs)


def test_the_list_shows_readable_columns(viewer: Client) -> None:
    """Started has the exact time as a tooltip, the subject is a link, the attempt comes with
    the arguments (so a re-parse id shows), state and upload have the admin's icons,
    counts are numbers and the size is in human units."""
    row = _row_with(
        A_ID,
        "x" * 5000,
        subject_arguments={"data_file_id": 7, "reparse_id": 42},
        counts={"INFO": 3, "WARNING": 2, "ERROR": 1},
    )
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    from django.utils import timezone

    exact = timezone.localtime(row.started).isoformat(timespec="milliseconds")
    assert f'title="{exact}"' in content
    assert f'href="{reverse(CHANGELIST)}?subject=7"' in content
    assert "#1 · 7, 42" in content
    assert "admin/img/icon-yes.svg" in content
    assert 'title="1 errors">1</span>' in content
    assert 'title="2 warnings">2</span>' in content
    assert row.bytes is not None and row.bytes < 1024
    assert f"{row.bytes}\xa0bytes" in content
    assert "column-task_id" not in content and "column-hostname" not in content


def test_the_detail_page_shows_counts_and_sizes_readably(viewer: Client) -> None:
    """The detail page lists records by level, most severe first, not raw JSON."""
    row = _row_with(A_ID, "a\n", counts={"INFO": 1200, "ERROR": 2, "WARNING": 5})
    content = viewer.get(pages(row)["detail"]).content.decode()
    assert "ERROR 2 · WARNING 5 · INFO 1,200" in content
    assert '{"INFO"' not in content
    assert f"{row.bytes}\xa0bytes" in content


def test_has_errors_and_incomplete_filters(viewer: Client) -> None:
    """ "has errors" keeps runs that logged ERROR or CRITICAL; "incomplete" keeps logs that
    did not reach their run's end."""
    _row_with(A_ID, "a\n", counts={"INFO": 1, "ERROR": 1})
    clean = _row_with(B_ID, "b\n", counts={"INFO": 1})
    TaskLog.objects.filter(pk=clean.pk).update(complete=False)
    url = reverse(CHANGELIST)

    def shown(**query: str) -> set[str]:
        content = viewer.get(url, query).content.decode()
        return {
            task_id
            for task_id in (A_ID, B_ID)
            if f"/{TaskLog.objects.run_of(task_id).pk}/change/" in content
        }

    assert shown(errors="yes") == {A_ID}
    assert shown(errors="no") == {B_ID}
    assert shown(complete="no") == {B_ID}
    assert shown(complete="yes") == {A_ID}


def link_for_subject(row: TaskLog) -> str:
    """A SUBJECT_URL function for the test below."""
    return f"/files/{row.subject}/by-function/"


def test_links_out_to_the_subject_and_flower(run: TaskLog, viewer: Client) -> None:
    """SUBJECT_URL (a template or a function) and FLOWER_URL become links on the list and
    on the run's page; without them nothing links out."""
    plain = viewer.get(pages(run)["detail"]).content.decode()
    assert "parselog-link-out" not in plain
    with override_settings(
        CELERY_PARSELOG_SUBJECT_URL="/files/{subject}/change/",
        CELERY_PARSELOG_FLOWER_URL="http://flower.local:5555/",
    ):
        detail = viewer.get(pages(run)["detail"]).content.decode()
        listing = viewer.get(reverse(CHANGELIST)).content.decode()
    assert 'href="/files/7/change/"' in detail
    assert f'href="http://flower.local:5555/task/{run.task_id}"' in detail
    assert 'href="/files/7/change/" class="parselog-out"' in listing
    with override_settings(CELERY_PARSELOG_SUBJECT_URL=f"{__name__}.link_for_subject"):
        detail = viewer.get(pages(run)["detail"]).content.decode()
    assert 'href="/files/7/by-function/"' in detail


def test_a_failed_upload_shows_host_spool_and_store_now(viewer: Client, settings: Any) -> None:
    """A log not stored yet names its host and spool folder, and offers “Store now”."""
    row = failed_run(A_ID, hostname="parse-host-3")
    content = viewer.get(pages(row)["detail"]).content.decode()
    assert "<code>parse-host-3</code>" in content
    assert f"<code>{settings.CELERY_PARSELOG_SPOOL_DIR}</code>" in content
    assert f"<code>{A_ID}-1-….log.gz</code>" in content
    assert 'id="parselog-store-now"' in content
    assert 'name="action" value="store_now"' in content


# -- the whole-log page ----------------------------------------------------------------


def _long_run() -> TaskLog:
    messages = []
    for n in range(1, 1201):
        level = "ERROR" if n % 100 == 0 else "WARNING" if n % 10 == 0 else "INFO"
        messages.append(f"parsers|{level}|record {n} of file 7")
    text = log_lines(A_ID, messages)
    text += 'Traceback (most recent call last):\n  File "p.py", line 1, in f\nValueError: bad\n'
    return stored_run(text, task_id=A_ID)


def whole_log(viewer: Client, row: TaskLog, query: dict[str, str] | None = None) -> str:
    """The text of ``row``'s whole-log page for ``query``."""
    url = reverse("admin:celery_parselog_tasklog_log", args=[row.pk])
    return viewer.get(url, query or {}).content.decode()


def test_whole_log_page_pages_with_stable_line_numbers(viewer: Client) -> None:
    """The log page shows 500 lines a page, anchored by their line numbers, with links to
    the next and previous pages."""
    row = _long_run()
    first = whole_log(viewer, row)
    assert 'id="L1"' in first and 'id="L500"' in first and 'id="L501"' not in first
    assert 'href="?start=501"' in first
    second = whole_log(viewer, row, {"start": "501"})
    assert 'id="L501"' in second and 'id="L1000"' in second
    assert 'href="?start=1"' in second
    assert 'href="?start=1001"' in second
    last = whole_log(viewer, row, {"start": "1001"})
    assert 'id="L1203"' in last and 'class="parselog-next"' not in last
    assert 'class="line traceback" id="L1201"' in last
    assert 'class="line error" id="L1200"' in last


def test_whole_log_page_filters_by_level_and_searches(viewer: Client) -> None:
    """The level filter keeps records at that level and above with their tracebacks; the
    search keeps matching lines and marks the match; numbers stay the log's own."""
    row = _long_run()
    errors = whole_log(viewer, row, {"level": "ERROR"})
    assert 'id="L100"' in errors and 'id="L1200"' in errors and 'id="L1203"' in errors
    assert 'id="L110"' not in errors and 'id="L1"' not in errors
    assert 'class="line error" id="L100"' in errors
    found = whole_log(viewer, row, {"q": "RECORD 77 "})
    assert 'id="L77"' in found and 'id="L78"' not in found
    assert "<mark>record 77 </mark>" in found
    assert 'href="?q=RECORD+77+&amp;start=77#L77"' in found


def test_the_preview_highlights_errors_warnings_and_tracebacks(viewer: Client) -> None:
    """The detail page's preview uses the whole-log page's highlighting."""
    row = stored_run(
        log_lines(A_ID, ["app|INFO|ok", "app|WARNING|odd", "app|ERROR|bad"])
        + "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'k'\n",
        task_id=A_ID,
    )
    content = viewer.get(pages(row)["detail"]).content.decode()
    assert re.search(r'class="line " id="L1">.*app: ok', content)
    assert re.search(r'class="line warning" id="L2">.*app: odd', content)
    assert re.search(r'class="line error" id="L3">.*app: bad', content)
    assert 'class="line traceback" id="L4"' in content
    assert 'class="line traceback" id="L6"' in content


# -- the audit trail -----------------------------------------------------------------


def test_every_read_leaves_an_audit_entry(run: TaskLog, viewer: Client) -> None:
    """Preview, whole-log page, download and comparison each record who read which run."""
    from celery_parselog.audit import LogRead

    other = _row_with(B_ID, "b\n")
    viewer.get(pages(run)["detail"])
    viewer.get(reverse("admin:celery_parselog_tasklog_log", args=[run.pk]), {"q": "123-45"})
    viewer.get(pages(run)["download"])
    viewer.get(reverse("admin:celery_parselog_tasklog_compare"), {"a": run.pk, "b": other.pk})
    entries = list(LogRead.objects.order_by("pk").values_list("username", "kind", "task_log"))
    assert entries == [
        ("viewer", "preview", run.pk),
        ("viewer", "log", run.pk),
        ("viewer", "download", run.pk),
        ("viewer", "compare", run.pk),
        ("viewer", "compare", other.pk),
    ]
    searched = LogRead.objects.get(kind="log")
    assert "search" in searched.detail and "123-45" not in searched.detail


def test_the_audit_trail_is_visible_read_only_and_purged_with_its_runs(run: TaskLog) -> None:
    """Entries are listed in the admin for those with the view permission, cannot be
    changed or deleted there, and go when parselog_purge deletes their run."""
    from django.core.management import call_command

    from celery_parselog.audit import LogRead

    auditor = staff("auditor", "view_tasklog", "view_logread")
    client = client_for(auditor)
    client.get(pages(run)["detail"])
    listing = client.get(reverse("admin:celery_parselog_logread_changelist")).content.decode()
    assert "auditor" in listing and "preview" in listing
    entry = LogRead.objects.get()
    assert (
        client.post(reverse("admin:celery_parselog_logread_delete", args=[entry.pk])).status_code
        == 403
    )
    TaskLog.objects.filter(pk=run.pk).update(started=BASE_TIME - timedelta(days=400))
    call_command("parselog_purge", "--older-than", "90", stdout=io.StringIO())
    assert not LogRead.objects.exists()


# -- downloads ---------------------------------------------------------------------


@pytest.mark.usefixtures("s3")
def test_an_s3_log_without_content_encoding_downloads_as_gzip(viewer: Client) -> None:
    """An S3 object of gzip bytes without ``Content-Encoding`` keeps its ``.gz`` name."""
    import boto3

    row = stored_run(log_lines(A_ID, ["app|INFO|x"]), task_id=A_ID, alias=S3_ALIAS)
    client = boto3.client("s3", region_name="us-east-1")
    client.copy_object(
        Bucket=BUCKET,
        Key=row.key,
        CopySource={"Bucket": BUCKET, "Key": row.key},
        MetadataDirective="REPLACE",
        ContentType="application/gzip",
    )
    query = parse_qs(urlsplit(viewer.get(pages(row)["download"])["Location"]).query)
    assert query["response-content-disposition"][0].endswith('.log.gz"')
    assert query["response-content-type"] == ["application/gzip"]


def test_a_redelivered_run_and_its_lost_delivery_link_each_other(viewer: Client) -> None:
    """When a message comes back after its worker was lost, the list marks the second
    delivery, each run's page links to the other, and the run of that task id and
    attempt is the later delivery."""
    lost = stored_run(log_lines(A_ID, ["app|INFO|first try"]), task_id=A_ID)
    TaskLog.objects.filter(pk=lost.pk).update(state=TaskLog.State.LOST, complete=False)
    again = TaskLog.objects.get(pk=lost.pk)
    again.pk = None
    again.delivery = 2
    again.key = lost.key.replace("-1.log", "-1-d2.log")
    again.redelivery_of = lost.key
    again.state = TaskLog.State.SUCCEEDED
    again.complete = True
    again.save()

    listed = viewer.get(reverse(CHANGELIST)).content.decode()
    assert re.search(r"#1 <span[^>]*title=\"delivery 2: [^\"]*lost\">↻2</span>", listed)
    assert listed.count("↻") == 1

    def page(row: TaskLog) -> str:
        url = reverse("admin:celery_parselog_tasklog_change", args=[row.pk])
        return str(viewer.get(url).content.decode())

    later = page(again)
    assert "delivery 2" in later
    assert reverse("admin:celery_parselog_tasklog_change", args=[lost.pk]) in later
    earlier = page(lost)
    assert "redelivered" in earlier
    assert reverse("admin:celery_parselog_tasklog_change", args=[again.pk]) in earlier

    assert TaskLog.objects.run_of(A_ID) == again
    assert TaskLog.objects.run_of(A_ID, attempt=1) == again
    assert TaskLog.objects.deliveries_of(again) == [lost, again]
