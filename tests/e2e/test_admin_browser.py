"""The admin's list, detail, whole-log and download as a person sees them: Django's live
server driven by Playwright in Debian's headless Chromium.

Set ``CELERY_PARSELOG_SCREENSHOTS_TO`` to a folder to keep the screenshots there (the
README's ``docs/list.png``, ``docs/detail.png`` and ``docs/log.png`` are made this way).
"""

from __future__ import annotations

import gzip
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from celery_parselog.models import TaskLog
from tests.browser_urls import one_time_login_path
from tests.e2e.conftest import BUCKET
from tests.e2e.test_compare_page_browser import ensure_chromium
from tests.unit.runs import BASE_TIME, log_lines, stored_run

SCREENSHOTS_TO = "CELERY_PARSELOG_SCREENSHOTS_TO"
_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium through Playwright, with every background connection off.

    Playwright's sync API runs an event loop in the test's thread, which Django takes
    for an async context; the test's own database calls are synchronous all the same.
    """
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def viewer(settings: Any) -> User:
    """A staff user allowed to view task logs, on the browser test's URLs."""
    settings.ROOT_URLCONF = "tests.browser_urls"
    settings.CELERY_PARSELOG_SUBJECT = "{data_file_id}"
    user: User = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="celery_parselog", codename="view_tasklog")
    )
    return user


def open_page(browser: Any, live_server: Any, user: User, path: str, **context: Any) -> Any:
    """A new page at ``path``, logged in as ``user``, 1280 px wide."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    page.goto(live_server.url + one_time_login_path(user.pk, path))
    return page


def keep(page: Any, name: str) -> None:
    """Save a full-page screenshot where CELERY_PARSELOG_SCREENSHOTS_TO says, if set."""
    if folder := os.environ.get(SCREENSHOTS_TO):
        page.screenshot(path=str(Path(folder) / name), full_page=False)


def parse_log(task_id: str, file_id: int, records: int = 30) -> str:
    messages = [f"datafiles.tasks|INFO|parse start file {file_id}"]
    for n in range(1, records + 1):
        if n % 11 == 0:
            messages.append(
                f"parsers.csv|ERROR|record {n} of file {file_id}: amount 'n/a' is not a number"
            )
        elif n % 4 == 0:
            messages.append(f"parsers.csv|WARNING|record {n} of file {file_id}: missing 'amount'")
        else:
            messages.append(f"parsers.csv|INFO|record {n} of file {file_id}")
    text = log_lines(task_id, messages)
    return text + (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/datafiles/parsers.py", line 88, in parse_amount\n'
        "    return Decimal(value)\n"
        "decimal.InvalidOperation: [<class 'decimal.ConversionSyntax'>]\n"
    )


def many_runs() -> list[Any]:
    """Runs of several data files, originals and re-parses, some with long arguments."""
    rows = []
    for n in range(12):
        task_id = str(uuid.uuid4())
        arguments: dict[str, Any] = {"data_file_id": 1000 + n // 2}
        if n % 2:
            arguments["reparse_id"] = 500 + n
        if n % 5 == 0:
            arguments["note"] = "a very long free-text argument that would widen the list " * 3
        rows.append(
            stored_run(
                parse_log(task_id, 1000 + n // 2, records=20 + n * 7),
                task_id=task_id,
                subject_arguments=arguments,
                started=BASE_TIME + timedelta(minutes=n),
                counts={"INFO": 20 + n, "WARNING": n % 4, "ERROR": n % 3},
                task_state="FAILURE" if n % 3 == 2 else "SUCCESS",
            )
        )
    return rows


def test_the_list_fits_1280_pixels(browser: Any, live_server: Any, viewer: User) -> None:
    """At 1280 px the list has no horizontal scrolling and shows every column."""
    many_runs()
    page = open_page(
        browser, live_server, viewer, reverse("admin:celery_parselog_tasklog_changelist")
    )
    assert page.locator("#result_list tbody tr").count() == 12
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    # The admin puts the table in a box that scrolls on its own: it must not need to.
    box = page.evaluate(
        "() => { const r = document.querySelector('#changelist .results');"
        " return [r.scrollWidth, r.clientWidth]; }"
    )
    assert box[0] <= box[1], f"the list scrolls sideways inside its box: {box}"
    size_cell = page.locator("#result_list tbody tr td.field-size").first
    assert size_cell.bounding_box()["x"] + size_cell.bounding_box()["width"] <= 1280
    headers = page.locator("#result_list thead th").all_inner_texts()
    for title in (
        "STARTED",
        "TASK",
        "SUBJECT",
        "ATTEMPT · ARGUMENTS",
        "STATE",
        "ERRORS / WARNINGS",
        "UPLOAD",
        "SIZE",
    ):
        assert any(title in header.upper() for header in headers), headers
    assert page.locator("#result_list time[title]").count() == 12
    assert "reparse" not in page.locator("#result_list").inner_text()  # values, not names
    keep(page, "list.png")


def test_the_detail_page_highlights_problems(browser: Any, live_server: Any, viewer: User) -> None:
    """The preview colours ERROR, WARNING and traceback lines and numbers every line."""
    task_id = str(uuid.uuid4())
    row = stored_run(
        parse_log(task_id, 7), task_id=task_id, counts={"INFO": 20, "WARNING": 7, "ERROR": 2}
    )
    page = open_page(
        browser, live_server, viewer, reverse("admin:celery_parselog_tasklog_change", args=[row.pk])
    )
    error = page.locator("#L12")
    assert "ERROR parsers.csv: record 11" in error.inner_text()
    colour = error.evaluate("node => getComputedStyle(node).backgroundColor")
    plain = page.locator("#L2").evaluate("node => getComputedStyle(node).backgroundColor")
    assert colour != plain and plain in ("rgba(0, 0, 0, 0)", "transparent")
    assert "warning" in (page.locator("#L5").get_attribute("class") or "")
    assert "traceback" in (page.locator("#L32").get_attribute("class") or "")
    assert "ERROR 2 · WARNING 7 · INFO 20" in page.content()
    page.locator("#parselog-preview").scroll_into_view_if_needed()
    page.evaluate("() => document.querySelector('#parselog-preview').scrollIntoView()")
    keep(page, "detail.png")


def test_the_whole_log_page_pages_and_searches(
    browser: Any, live_server: Any, viewer: User
) -> None:
    """Next and previous pages keep line numbers; the level filter and search narrow lines."""
    task_id = str(uuid.uuid4())
    row = stored_run(parse_log(task_id, 9, records=1300), task_id=task_id)
    page = open_page(
        browser, live_server, viewer, reverse("admin:celery_parselog_tasklog_log", args=[row.pk])
    )
    assert page.locator("#parselog-log .line").count() == 500
    page.locator(".parselog-next").first.click()
    assert page.locator("#L501").is_visible() and page.locator("#L500").count() == 0
    page.locator(".parselog-previous").first.click()
    assert page.locator("#L1").count() == 1
    page.select_option("#parselog-level", "ERROR")
    page.fill("#parselog-q", "record 121 ")
    page.locator("#parselog-search input[type=submit]").click()
    lines = page.locator("#parselog-log .line")
    assert lines.count() == 1
    assert "record 121 of file 9" in lines.first.inner_text()
    assert lines.first.get_attribute("id") == "L122"
    assert page.locator("#parselog-log mark").inner_text() == "record 121 "
    page.select_option("#parselog-level", "WARNING")
    page.fill("#parselog-q", "")
    page.locator("#parselog-search input[type=submit]").click()
    keep(page, "log.png")


def _download(page: Any) -> tuple[str, bytes]:
    with page.expect_download() as caught:
        page.locator("a.parselog-download").first.click()
    download = caught.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def download_from_run_page(
    browser: Any, live_server: Any, viewer: User, row: TaskLog
) -> tuple[str, bytes]:
    """What the browser saves when ``viewer`` clicks Download on ``row``'s page."""
    page = open_page(
        browser,
        live_server,
        viewer,
        reverse("admin:celery_parselog_tasklog_change", args=[row.pk]),
        accept_downloads=True,
    )
    return _download(page)


def test_a_file_system_download_is_a_valid_gzip_file(
    browser: Any, live_server: Any, viewer: User
) -> None:
    """Saved from FileSystemStorage, the file is named .log.gz and really is gzip."""
    task_id = str(uuid.uuid4())
    row = stored_run(parse_log(task_id, 3), task_id=task_id)
    name, data = download_from_run_page(browser, live_server, viewer, row)
    assert name.endswith(".log.gz")
    assert (
        gzip.decompress(data).decode().startswith("2026-11-29T19:52:10.417Z INFO datafiles.tasks")
    )


def test_an_s3_download_is_a_valid_text_file(
    browser: Any, live_server: Any, viewer: User, settings: Any, s3_endpoint: str
) -> None:
    """Saved from S3 (moto over HTTP), where the object has Content-Encoding: gzip, the file
    is named .log and holds the log's text."""
    settings.STORAGES = {
        **settings.STORAGES,
        "s3": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
            },
        },
    }
    task_id = str(uuid.uuid4())
    row = stored_run(parse_log(task_id, 4), task_id=task_id, alias="s3")
    name, data = download_from_run_page(browser, live_server, viewer, row)
    assert name == f"{task_id}-1.log"
    assert data.decode().startswith("2026-11-29T19:52:10.417Z INFO datafiles.tasks")
