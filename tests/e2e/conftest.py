"""Real parts for the end-to-end tests: a Redis server, moto's S3 server over HTTP, a
PostgreSQL server, and ``celery worker`` subprocesses of the project in ``tests/e2e/proj``."""

from __future__ import annotations

import gc
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.result import AsyncResult
from moto.server import ThreadedMotoServer

from celery_parselog import LogInfo
from tests.servers import (
    PostgresServer,
    free_port,
    moto_s3,
    postgres_server,
    redis_server,
    s3_client,
)

REPO = Path(__file__).resolve().parents[2]
BUCKET = "parselog-e2e"

__all__ = [
    "BUCKET",
    "REPO",
    "RecordFault",
    "StoppableS3",
    "Worker",
    "free_port",
    "object_lines",
    "running_pid",
    "s3_client",
    "spool_contents",
    "stored_text",
    "wait_for",
]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private Redis server on a free port, without persistence."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def _s3_server() -> Iterator[str]:
    """moto's S3 server over real HTTP, for the whole session."""
    with moto_s3(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def s3_endpoint(_s3_server: str) -> str:
    """The session's S3 server, with the test bucket there when the test starts.

    moto keeps its buckets in one store per process, which a test that starts and
    stops S3 servers of its own (an outage) leaves empty; so the bucket is made again
    whenever it is missing, and no test depends on the order the tests ran in.
    """
    client = s3_client(_s3_server)
    if BUCKET not in {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    return _s3_server


class StoppableS3:
    """moto's S3 server on a fixed port that a test can take down and bring back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        """Start (or bring back) the server, with the test bucket there once it answers."""
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self._server.start()
        client = s3_client(self.endpoint)
        if BUCKET not in {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture
def stoppable_s3() -> Iterator[StoppableS3]:
    """An S3 server of the test's own, with the test bucket, for a test to make an outage."""
    server = StoppableS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server on a free port, started for the tests that use it."""
    with postgres_server(durable=False) as server:
        yield server


@pytest.fixture
def postgres_env(postgres: PostgresServer) -> dict[str, str]:
    """Worker environment for a database of this test's own on the PostgreSQL server."""
    entry = postgres.create_database(f"e2e_{uuid.uuid4().hex[:12]}")
    return {"E2E_DATABASE": json.dumps(entry)}


@dataclass
class Worker:
    """A running worker subprocess, with a client app that talks to the same Redis."""

    name: str
    process: subprocess.Popen[bytes]
    output: Path
    client: Celery
    env: dict[str, str]
    state_dir: Path
    queue: str

    def send(self, task_name: str, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        """Send a task to this worker's own queue, so workers of one test never share work."""
        return self.client.send_task(task_name, args=args, kwargs=kwargs, queue=self.queue)

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")


def _base_env(redis_url: str, s3_endpoint: str, state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CELERY_", "DJANGO_"))}
    env.update(
        PYTHONPATH=str(REPO),
        DJANGO_SETTINGS_MODULE="tests.e2e.proj.settings",
        E2E_REDIS_URL=redis_url,
        E2E_S3_ENDPOINT=s3_endpoint,
        E2E_BUCKET=BUCKET,
        E2E_STATE_DIR=str(state_dir),
        # Keep any credentials of the machine's user out of the tests.
        AWS_CONFIG_FILE=str(state_dir / "missing-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(state_dir / "missing-aws-credentials"),
    )
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )


@pytest.fixture
def start_worker(redis_url: str, s3_endpoint: str, tmp_path: Path) -> Iterator[Any]:
    """Start ``celery worker`` subprocesses; each is shut down warmly at the end of the test."""
    started: list[Worker] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        state_dir: Path | None = None,
        queue: str | None = None,
    ) -> Worker:
        """Start a worker; pass the ``state_dir`` and ``queue`` of an earlier one to succeed it."""
        if state_dir is None:
            state_dir = tmp_path / f"state-{len(started)}"
            state_dir.mkdir()
        full_env = _base_env(redis_url, s3_endpoint, state_dir)
        full_env.update(env or {})
        migrate(full_env)
        unique = uuid.uuid4().hex[:8]
        name, queue = f"e2e-{unique}@localhost", queue or f"e2e-{unique}"
        output = state_dir / f"worker-{unique}.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "tests.e2e.proj",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "-n",
                    name,
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-Q",
                    queue,
                    *args,
                ],
                cwd=REPO,
                env=full_env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        # The client reads results from Redis; a worker on another backend is read by a
        # client process of its own (see read_django_db_meta.py).
        client = Celery("e2e-client", broker=redis_url, backend=redis_url, set_as_current=False)
        worker = Worker(name, process, output, client, full_env, state_dir, queue)
        started.append(worker)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}:\n{worker.log_text()}")
            if client.control.ping(destination=[name], timeout=0.5):
                return worker
        raise RuntimeError(f"worker did not become ready:\n{worker.log_text()}")

    yield start

    # Results still referenced unsubscribe from Redis when collected: let that happen
    # now, while Redis is up, rather than at interpreter exit.
    gc.collect()
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
            try:
                worker.process.wait(30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(10)
        worker.client.close()


# -- Helpers the tests share: waiting, and reading what a run left --------------------


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def running_pid(worker: Worker, file_id: int) -> int:
    """The pid of the process running a task for ``file_id``, once it said it got going
    (the project's tasks write it to ``running-<file_id>`` in the state folder)."""
    marker = worker.state_dir / f"running-{file_id}"
    return int(wait_for(lambda: marker.exists() and marker.read_text(), 60, "the task to start"))


def object_lines(endpoint: str, key: str) -> list[str]:
    """The lines of the log stored under ``key``, decompressed when it is gzip."""
    body = s3_client(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    text = gzip.decompress(body) if key.endswith(".gz") else body
    return str(text.decode()).splitlines()


def stored_text(endpoint: str, info: LogInfo) -> list[str]:
    return object_lines(endpoint, info.key)


def spool_contents(worker: Worker) -> list[str]:
    spool = worker.state_dir / "spool"
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


def parse_while_s3_is_down(
    start_worker: Any, s3: StoppableS3, file_id: int
) -> tuple[Worker, AsyncResult[Any]]:
    """``parse(file_id)`` on a solo worker while ``s3`` is down, with one upload try and a
    sweep only at start: the log and its manifest stay in the spool until something
    (a command, the admin's "Store now") stores them."""
    worker: Worker = start_worker(
        "--pool",
        "solo",
        env={
            "E2E_S3_ENDPOINT": s3.endpoint,
            "E2E_UPLOAD_ATTEMPTS": "1",
            "E2E_RECOVERY_INTERVAL": "0",
        },
    )
    s3.stop()
    result = worker.send("tests.e2e.proj.tasks.parse", file_id)
    result.get(timeout=60)
    assert wait_for(lambda: len(spool_contents(worker)) == 2, 30, "the log to stay in the spool")
    return worker, result


def run_python(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``python ARGV`` from the repository with ``env``, until it exits (two minutes at most)."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_in_project(worker: Worker, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python ARGV`` in ``worker``'s environment (its settings, database and storage),
    as an operator's second process on that host would run it."""
    return run_python(worker.env, *argv)


def django_db_meta(worker: Worker, task_id: str) -> dict[str, Any]:
    """What a separate Django process reads of a task from the worker's own database."""
    reader = run_in_project(
        worker, str(Path(__file__).with_name("read_django_db_meta.py")), task_id
    )
    assert reader.returncode == 0, reader.stderr
    report: dict[str, Any] = json.loads(reader.stdout)
    return report


# -- The reliability table: each fault test records what it saw --------------------


@dataclass(frozen=True)
class FaultOutcome:
    fault: str
    state_kept: bool
    logs_expected: int
    logs_stored: int
    logs_misattributed: int


_outcomes: list[FaultOutcome] = []

RecordFault = Callable[..., None]


@pytest.fixture
def record_fault() -> RecordFault:
    """Record one fault's outcome for the reliability table (call it once the test passed)."""

    def record(
        fault: str,
        *,
        state_kept: bool,
        logs_expected: int,
        logs_stored: int,
        logs_misattributed: int,
    ) -> None:
        _outcomes.append(
            FaultOutcome(fault, state_kept, logs_expected, logs_stored, logs_misattributed)
        )

    return record


def wrong_run(info: LogInfo, task_id: str, attempt: int, delivery: int = 1) -> int:
    """1 when a stored log's entry names another run than the one that wrote it, else 0."""
    return int((info.task_id, info.attempt, info.delivery) != (task_id, attempt, delivery))


def one_log(info: LogInfo, task_id: str, attempt: int = 1) -> dict[str, int]:
    """``record_fault``'s counts for a fault whose run leaves one log, the one ``info`` names."""
    return {
        "logs_expected": 1,
        "logs_stored": int(info.stored),
        "logs_misattributed": wrong_run(info, task_id, attempt),
    }


def reliability_table(outcomes: list[FaultOutcome]) -> str:
    rows = [
        "| Fault | Task state kept | Logs expected | Logs lost"
        " | Logs in the wrong run or attempt |",
        "|---|---|---|---|---|",
    ]
    for outcome in sorted(outcomes, key=lambda o: o.fault):
        rows.append(
            f"| {outcome.fault} | {'yes' if outcome.state_kept else 'NO'} "
            f"| {outcome.logs_expected} | {outcome.logs_expected - outcome.logs_stored} "
            f"| {outcome.logs_misattributed} |"
        )
    return "\n".join(rows) + "\n"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--reliability-report")
    if path and _outcomes:
        Path(path).write_text(reliability_table(_outcomes))
