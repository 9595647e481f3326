"""The metrics extra: what each call counts, prefork's multiprocess mode, scraping a
process's endpoint, and doing nothing when prometheus_client is not installed.

The cases that depend on the process's state (the multiprocess folder, which must be
set before prometheus_client is imported; a missing prometheus_client) run in a fresh
interpreter of their own.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from prometheus_client import REGISTRY

from celery_parselog import metrics
from tests.child import run_python
from tests.servers import free_port


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _python(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object, returned here."""
    completed = run_python("-c", textwrap.dedent(code), timeout=60, inherit=False, **(env or {}))
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout)
    return result


def test_each_call_moves_its_own_metrics() -> None:
    """Captured, stored (with bytes and upload time), failed, recovered and lost each count
    per task name, and the spool backlog gauges hold the last value per worker."""
    task = "tests.unit.test_metrics.sample"
    before = {
        name: _value(name, task=task)
        for name in (
            "celery_parselog_runs_captured_total",
            "celery_parselog_runs_stored_total",
            "celery_parselog_stored_bytes_total",
            "celery_parselog_upload_seconds_count",
            "celery_parselog_upload_failures_total",
            "celery_parselog_runs_recovered_total",
            "celery_parselog_runs_lost_total",
        )
    }

    metrics.run_captured(task)
    metrics.run_captured(task)
    metrics.run_stored(task, 1200, 0.02)
    metrics.upload_failed(task, 3.5)
    metrics.run_recovered(task, 300)
    metrics.run_lost(task)
    metrics.spool_backlog(4, 9000, worker="w1@host")
    metrics.spool_backlog(2, 500, worker="w1@host")

    def moved(name: str) -> float:
        return _value(name, task=task) - before[name]

    assert moved("celery_parselog_runs_captured_total") == 2
    assert moved("celery_parselog_runs_stored_total") == 1
    assert moved("celery_parselog_stored_bytes_total") == 1500
    assert moved("celery_parselog_upload_seconds_count") == 2
    assert moved("celery_parselog_upload_failures_total") == 1
    assert moved("celery_parselog_runs_recovered_total") == 1
    assert moved("celery_parselog_runs_lost_total") == 1
    assert _value("celery_parselog_spool_backlog_files", worker="w1@host") == 2
    assert _value("celery_parselog_spool_backlog_bytes", worker="w1@host") == 500
    assert _value("celery_parselog_upload_seconds_bucket", task=task, le="0.025") >= 1


def test_without_prometheus_client_calls_do_nothing_and_look_only_once() -> None:
    """With prometheus_client missing, every call returns quietly, the import is tried
    once for the process and never again, and serve() says which extra is missing."""
    result = _python(
        """
        import json, sys
        attempts = []

        class Missing:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "prometheus_client":
                    attempts.append(name)
                    raise ImportError(name)
                return None

        sys.meta_path.insert(0, Missing())
        from celery_parselog import metrics

        for _ in range(100):
            metrics.run_captured("t")
            metrics.run_stored("t", 10, 0.1)
            metrics.upload_failed("t", 0.1)
            metrics.run_recovered("t", 10)
            metrics.run_lost("t")
            metrics.spool_backlog(1, 10)
            metrics.process_exited(1)
        try:
            metrics.serve(0)
        except ImportError as error:
            message = str(error)
        else:
            message = ""
        print(json.dumps({"attempts": len(attempts), "serve": message}))
        """
    )
    assert result["attempts"] == 1
    assert "celery-parselog[metrics]" in str(result["serve"])


def test_prefork_children_are_added_up_and_served_by_the_main_process(tmp_path: Path) -> None:
    """In multiprocess mode, counts made in forked children reach the main process's
    /metrics endpoint summed, and a child that exited loses its backlog gauge once
    process_exited() is called for it, while its counts stay."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    port = free_port()
    result = _python(
        f"""
        import json, multiprocessing, urllib.request
        from celery_parselog import metrics

        def child(number):
            metrics.run_captured("t")
            metrics.run_stored("t", 100 * number, 0.01)
            metrics.spool_backlog(number, 10 * number, worker="w{{}}".format(number))

        context = multiprocessing.get_context("fork")
        pids = []
        for number in (1, 2):
            process = context.Process(target=child, args=(number,))
            process.start()
            process.join()
            pids.append(process.pid)
        metrics.process_exited(pids[1])
        metrics.serve({port})
        page = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=10).read()
        print(json.dumps({{"page": page.decode()}}))
        """,
        env={"PROMETHEUS_MULTIPROC_DIR": str(folder)},
    )
    page = str(result["page"]).splitlines()
    assert 'celery_parselog_runs_captured_total{task="t"} 2.0' in page
    assert 'celery_parselog_stored_bytes_total{task="t"} 300.0' in page
    assert 'celery_parselog_upload_seconds_count{task="t"} 2.0' in page
    assert 'celery_parselog_spool_backlog_files{worker="w1"} 1.0' in page
    assert not any(
        line.startswith('celery_parselog_spool_backlog_files{worker="w2"}') for line in page
    )
