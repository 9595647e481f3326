"""The compare page as a person sees it: Django's live server, headless Chromium, a screenshot.

Chromium comes from Debian's packages and is installed here when missing (the test
runs as root in CI). The machine reaches no network but the package registries, so
Chromium runs with every background connection turned off. The test never skips: a
Chromium that cannot be installed or started fails it with the reason.

Set ``CELERY_PARSELOG_SCREENSHOT_TO`` to a path to keep the screenshot there (the
README's ``docs/compare.png`` is made this way).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils.http import urlencode

from tests.browser_urls import one_time_login_path
from tests.unit.runs import BASE_TIME, log_lines, stored_run

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_TO = "CELERY_PARSELOG_SCREENSHOT_TO"
_TIMEOUT = 180


def ensure_chromium() -> Path:
    """Chromium from Debian's packages, installed now if missing; fails the test if it cannot be."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        pytest.fail(
            f"{CHROMIUM} is missing and this test is not running as root, so it cannot "
            "install it: run `apt-get install -y chromium` as root first."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    attempts = [install, ["apt-get", "update", "-q"], install]
    output = ""
    for command in attempts:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=1800, check=False
        )
        output = done.stdout[-2000:] + done.stderr[-2000:]
        if command is install and done.returncode == 0 and CHROMIUM.exists():
            return CHROMIUM
    pytest.fail(f"Chromium could not be installed with apt-get:\n{output}")


def chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with everything that would reach the network turned off."""
    command = [
        str(ensure_chromium()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *arguments,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"Chromium did not finish within {_TIMEOUT}s: {error}")
    if done.returncode != 0:
        pytest.fail(f"Chromium exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_compare_page_in_headless_chromium(live_server: Any, settings: Any, tmp_path: Path) -> None:
    """The compare page renders in a real browser with its summary table, the kinds of
    message that changed (errors first, with an example line) and its diff."""
    settings.ROOT_URLCONF = "tests.browser_urls"
    settings.CELERY_PARSELOG_SUBJECT = "{data_file_id}"
    a_id, b_id = str(uuid.uuid4()), str(uuid.uuid4())
    common = [
        "datafiles.tasks|INFO|parse start file 7",
        "parsers.csv|INFO|reading samples/7.csv (12 columns)",
        "parsers.csv|INFO|record 1 of file 7",
        "parsers.csv|INFO|record 2 of file 7",
    ]
    a = stored_run(
        log_lines(
            a_id,
            [
                *common,
                "parsers.csv|WARNING|bad record 3 in file 7: missing 'amount'",
                "parsers.csv|INFO|record 4 of file 7",
                "stdout|INFO|printed 4 rows",
                "celery.app.trace|INFO|Task datafiles.tasks.parse[{id}] succeeded in 0.0421s: 4",
            ],
        ),
        task_id=a_id,
        counts={"INFO": 7, "WARNING": 1},
    )
    b = stored_run(
        log_lines(
            b_id,
            [
                *common,
                "parsers.csv|INFO|record 3 of file 7",
                "parsers.csv|INFO|record 4 of file 7",
                "parsers.csv|ERROR|record 5 of file 7: amount 'n/a' is not a number",
                "stdout|INFO|printed 5 rows",
                "celery.app.trace|INFO|Task datafiles.tasks.parse[{id}] succeeded in 0.0533s: 5",
            ],
            start=BASE_TIME + timedelta(hours=2),
        ),
        task_id=b_id,
        started=BASE_TIME + timedelta(hours=2),
        counts={"INFO": 8, "ERROR": 1},
    )
    user = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(*_view_permission())
    compare = (
        reverse("admin:celery_parselog_tasklog_compare") + "?" + urlencode({"a": a.pk, "b": b.pk})
    )

    screenshot = tmp_path / "compare.png"
    chromium(
        tmp_path / "profile-screenshot",
        f"--screenshot={screenshot}",
        "--window-size=1400,1000",
        live_server.url + one_time_login_path(user.pk, compare),
    )
    assert screenshot.exists(), "Chromium wrote no screenshot"
    assert screenshot.stat().st_size > 20_000, "the screenshot is too small to show the page"
    assert png_size(screenshot) == (1400, 1000)

    dom = chromium(
        tmp_path / "profile-dom",
        "--dump-dom",
        live_server.url + one_time_login_path(user.pk, compare),
    ).stdout
    assert 'id="parselog-summary"' in dom, "the summary table is missing (not logged in?)"
    assert 'id="parselog-levels"' in dom
    assert 'id="parselog-loggers"' in dom
    assert 'id="parselog-diff"' in dom
    assert 'id="parselog-kinds"' in dom, "the kinds-of-message summary is missing"
    table = dom[dom.index('id="parselog-kinds"') :]
    rows = table[table.index("<tbody>") : table.index("</tbody>")].split("<tr")[1:]
    templates = [
        "&lt;time&gt; ERROR parsers.csv: record &lt;num&gt; of file &lt;num&gt;: "
        "amount '&lt;str&gt;' is not a number",
        "&lt;time&gt; WARNING parsers.csv: bad record &lt;num&gt; in file &lt;num&gt;: "
        "missing '&lt;str&gt;'",
        "&lt;time&gt; INFO parsers.csv: record &lt;num&gt; of file &lt;num&gt;<",
    ]
    found = [next(n for n, row in enumerate(rows) if t in row) for t in templates]
    assert found == sorted(found), "errors first, then warnings, then the rest"
    error, warning, info = (rows[n] for n in found)
    assert "new in B" in error
    assert "record 5 of file 7: amount 'n/a' is not a number" in error, "no example line"
    assert "gone from B" in warning
    assert ">+1<" in info, "the record lines grew by one"
    assert "-&lt;time&gt; WARNING parsers.csv: bad record 3 in file 7" in dom
    assert "+&lt;time&gt; ERROR parsers.csv: record 5 of file 7" in dom
    assert "succeeded in &lt;duration&gt;" in dom

    if target := os.environ.get(SCREENSHOT_TO):
        shutil.copyfile(screenshot, target)


def _view_permission() -> list[Any]:
    from django.contrib.auth.models import Permission

    return list(
        Permission.objects.filter(
            content_type__app_label="celery_parselog", codename="view_tasklog"
        )
    )
