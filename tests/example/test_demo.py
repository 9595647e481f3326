"""The example parser service's ``demo`` command, run as a user runs it, in each of its modes.

Every run gets a var folder of its own, so the tests never touch a developer's
``example_project/var`` nor each other's files.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.example.conftest import BUCKET, s3_client

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "example_project" / "manage.py"
DEMO_TIMEOUT = 180
RULE = "-" * 72
TRACEBACK = "Traceback (most recent call last):"
CORRUPT_ERROR = (
    "datafiles.formats.CorruptFileError: 2024-Q2-south.csv ends at line 47 "
    "without a TRAILER line; the file was cut short"
)

# File, reparse, state, warnings and errors of each run, in the order the demo starts them.
EXPECTED_RUNS = [
    ("2024-Q1-north.csv", "-", "SUCCESS", 0, 0),
    ("2024-Q1-south.csv", "-", "SUCCESS", 0, 0),
    ("2024-Q2-north.csv", "-", "SUCCESS", 5, 0),
    ("2024-Q2-south.csv", "-", "FAILURE", 3, 1),
    ("2024-Q1-north.csv", "1", "SUCCESS", 0, 0),
]
_ROW = re.compile(r"^[0-9a-f]{8}  ")


@dataclass(frozen=True)
class Row:
    """One line of the demo's table of runs."""

    task: str
    file_id: int
    file: str
    reparse: str
    state: str
    bytes: int
    warnings: int
    errors: int
    uri: str

    @property
    def key_reparse(self) -> str:
        """The reparse part of the log key: the template renders a missing id as ``None``."""
        return "None" if self.reparse == "-" else self.reparse


@dataclass
class DemoResult:
    returncode: int
    stdout: str
    stderr: str
    var_dir: Path

    def rows(self) -> list[Row]:
        rows = []
        for line in self.stdout.splitlines():
            if _ROW.match(line):
                task, file_id, file, reparse, state, size, warnings, errors, uri = line.split()
                rows.append(
                    Row(
                        task,
                        int(file_id),
                        file,
                        reparse,
                        state,
                        int(size),
                        int(warnings),
                        int(errors),
                        uri,
                    )
                )
        return rows

    def printed_log(self) -> str:
        """The log the demo printed in full, between its two rules."""
        lines = self.stdout.splitlines()
        rules = [number for number, line in enumerate(lines) if line == RULE]
        assert len(rules) == 2, self.stdout
        return "\n".join(lines[rules[0] + 1 : rules[1]])


def run_demo(var_dir: Path, *args: str, env: dict[str, str] | None = None) -> DemoResult:
    """Run ``manage.py demo`` in a new process, with none of this machine's setup leaking in."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "DEMO_", "CELERY_", "DJANGO_"))
    }
    clean.update(DEMO_VAR_DIR=str(var_dir), **(env or {}))
    process = subprocess.Popen(
        [sys.executable, str(MANAGE), "demo", *args],
        cwd=REPO,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=DEMO_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()  # the demo stops its worker on SIGTERM
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"the demo ran over {DEMO_TIMEOUT} s:\n{stdout}\n{stderr}")
    return DemoResult(process.returncode, stdout, stderr, var_dir)


def finished_demo(var_dir: Path, *args: str, env: dict[str, str] | None = None) -> DemoResult:
    result = run_demo(var_dir, *args, env=env)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Worker stopped (exit status 0)." in result.stdout
    return result


def check_table(result: DemoResult, uri_prefix: str) -> list[Row]:
    """A row per run with the expected outcome, each with a log URI of its own."""
    rows = result.rows()
    assert [(r.file, r.reparse, r.state, r.warnings, r.errors) for r in rows] == EXPECTED_RUNS
    for row in rows:
        pattern = (
            rf"{re.escape(uri_prefix)}parsing_logs/{row.file_id}/{row.key_reparse}/"
            rf"{row.task}[0-9a-f-]{{28}}-1\.log\.gz"
        )
        assert re.fullmatch(pattern, row.uri), row.uri
        assert row.bytes > 0
    assert len({row.uri for row in rows}) == len(rows)
    first, again = rows[0], rows[-1]
    assert first.file_id == again.file_id, "the re-parse should be of the same data file"
    return rows


def check_log(row: Row, stored: bytes) -> str:
    """A stored log: gzip of the right size, holding this run's lines and no other run's."""
    assert len(stored) == row.bytes
    text = gzip.decompress(stored).decode("utf-8")
    reparse = "None" if row.reparse == "-" else row.reparse
    assert f"INFO root: parse of data file {row.file_id} started (reparse {reparse})" in text
    assert f"INFO stdout: {row.file}: " in text
    assert text.count(" WARNING datafiles.parsers: ") == row.warnings
    assert text.count("parse of data file") == (1 if row.state == "FAILURE" else 2)
    if row.state == "FAILURE":
        assert TRACEBACK in text
        assert text.rstrip("\n").endswith(CORRUPT_ERROR)
    else:
        assert TRACEBACK not in text
    return text


def check_printed_log(result: DemoResult) -> None:
    """The log printed in full is the failed run's, traceback included."""
    printed = result.printed_log()
    assert "INFO root: parse of data file 4 started (reparse None)" in printed
    assert TRACEBACK in printed
    assert printed.rstrip("\n").endswith(CORRUPT_ERROR)


def test_embedded_demo_keeps_a_log_per_run_in_the_var_folder(tmp_path: Path) -> None:
    """No servers: filesystem broker, django-db results, logs as .log.gz files under var/."""
    var_dir = tmp_path / "var"
    result = finished_demo(var_dir)

    media = (var_dir / "media").resolve()
    rows = check_table(result, media.as_uri() + "/")
    for row in rows:
        check_log(row, Path(unquote(urlparse(row.uri).path)).read_bytes())
    reparsed = sorted((media / "parsing_logs" / str(rows[0].file_id)).rglob("*.log.gz"))
    assert len(reparsed) == 2, "the re-parse must not replace the first run's log"
    check_printed_log(result)
    assert "Broker: filesystem://" in result.stdout
    assert "Results: django-db" in result.stdout
    # The deployment's own rotating file still got the parser lines: capture only adds.
    rotating = (var_dir / "logs" / "parser_service.log").read_text()
    assert "WARNING [datafiles.parsers]" in rotating
    assert "R00007: amount '-12.50' is not a positive amount" in rotating
    assert list((var_dir / "spool").iterdir()) == [], "every spool file should be uploaded"


def test_redis_and_s3_from_the_environment_store_each_run_in_the_bucket(
    tmp_path: Path, redis_url: str, s3_endpoint: str
) -> None:
    """DEMO_REDIS_URL and DEMO_S3_* switch to Redis and S3; every run has its own object."""
    env = {
        "DEMO_REDIS_URL": redis_url,
        "DEMO_S3_BUCKET": BUCKET,
        "DEMO_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "missing-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "missing-aws-credentials"),
    }
    result = finished_demo(tmp_path / "var", env=env)

    assert f"Broker: {redis_url}" in result.stdout
    rows = check_table(result, f"s3://{BUCKET}/")
    client = s3_client(s3_endpoint)
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="parsing_logs/")["Contents"]
    assert {item["Key"] for item in listed} == {urlparse(row.uri).path[1:] for row in rows}
    texts = {}
    for row in rows:
        stored = client.get_object(Bucket=BUCKET, Key=urlparse(row.uri).path[1:])
        assert stored["ContentEncoding"] == "gzip"
        texts[row.task] = check_log(row, stored["Body"].read())
    first, again = rows[0], rows[-1]
    assert urlparse(first.uri).path != urlparse(again.uri).path
    assert "(reparse None)" in texts[first.task] and "(reparse 1)" in texts[again.task]
    # The sample files themselves went to the bucket too, and nothing to the var folder.
    uploads = client.list_objects_v2(Bucket=BUCKET, Prefix="datafiles/")["Contents"]
    assert len(uploads) == 4
    assert not (tmp_path / "var" / "media").exists()


def test_s3_flag_serves_s3_locally_with_dummy_credentials_only(
    tmp_path: Path, redis_url: str
) -> None:
    """--s3 starts moto's server itself; the machine's AWS profile and keys are never used."""
    env = {
        "DEMO_REDIS_URL": redis_url,
        # Were these read, boto3 would fail on the missing profile, or sign with these keys.
        "AWS_PROFILE": "no-such-profile",
        "AWS_ACCESS_KEY_ID": "must-not-be-used",
        "AWS_SECRET_ACCESS_KEY": "must-not-be-used",
    }
    result = finished_demo(tmp_path / "var", "--s3", env=env)

    assert "Storage: S3Storage, s3://parser-service-demo at http://127.0.0.1:" in result.stdout
    check_table(result, "s3://parser-service-demo/")
    assert "Every run's log is in storage, under a key of its own (5)." in result.stdout
    check_printed_log(result)


def test_a_failing_demo_exits_non_zero_and_stops_its_worker(tmp_path: Path) -> None:
    """A step that fails ends the demo with status 1 and a message, after a warm worker stop."""
    empty = tmp_path / "no-samples"
    empty.mkdir()
    result = run_demo(tmp_path / "var", "--samples", str(empty))

    assert result.returncode == 1
    assert f"no sample files (named like 2024-Q1-north.csv) in {empty}" in result.stderr
    worker_output = (tmp_path / "var" / "logs" / "worker.out").read_text()
    assert "ready." in worker_output
    assert "Warm shutdown" in worker_output
