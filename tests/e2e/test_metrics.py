"""End to end: a prefork worker serving Prometheus metrics counts the runs it captured."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from celery_parselog import log_info
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

PARSE = "tests.e2e.proj.tasks.parse"


def scrape(port: int) -> dict[str, float]:
    """The worker's /metrics as {sample with labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_worker_metrics_count_captured_and_stored_runs(start_worker: Any, tmp_path: Path) -> None:
    """After three runs in a prefork worker's children, the main process's endpoint shows
    three runs captured and stored, their bytes, and their upload times."""
    port = free_port()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    worker = start_worker(
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        env={"E2E_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(folder)},
    )
    results = [worker.send(PARSE, number) for number in (1, 2, 3)]
    infos = [log_info(result.id, wait=60, app=worker.client) for result in results]
    assert all(info is not None and info.stored for info in infos)
    task = f'task="{PARSE}"'
    deadline = time.monotonic() + 20
    samples: dict[str, float] = {}
    while time.monotonic() < deadline:
        try:
            samples = scrape(port)
        except OSError:  # the main process serves once it is ready; it may be a moment
            time.sleep(0.2)
            continue
        if samples.get(f"celery_parselog_runs_stored_total{{{task}}}") == 3:
            break
        time.sleep(0.2)
    assert samples, "the worker served no metrics"
    assert samples[f"celery_parselog_runs_captured_total{{{task}}}"] == 3
    assert samples[f"celery_parselog_runs_stored_total{{{task}}}"] == 3
    assert samples[f"celery_parselog_stored_bytes_total{{{task}}}"] == sum(
        info.bytes or 0 for info in infos if info is not None
    )
    assert samples[f"celery_parselog_upload_seconds_count{{{task}}}"] == 3
