"""``manage.py demo``: the parser service end to end, once, on its sample files.

It migrates, starts a real ``celery worker`` with capture on, uploads the samples,
parses each (and one of them twice), then prints where every run's log went and
one log in full. The worker is always stopped before the command returns, whether
the demo succeeded, failed, or was interrupted.

With ``--s3`` it first serves S3 on this machine, then runs the same demo in a new
process whose settings point at that server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.utils.url import maybe_sanitize_url

from datafiles.models import ParseRun
from demo.environ import environ
from demo.errors import DemoError
from demo.local_s3 import local_s3
from demo.samples import upload_samples
from demo.scenario import parse_all
from demo.stored_logs import check_stored, read_log
from demo.table import format_table
from demo.worker import WorkerProcess

DEFAULT_BUCKET = "parser-service-demo"
_HEADERS = ("TASK", "FILE ID", "FILE", "REPARSE", "STATE", "BYTES", "WARNINGS", "ERRORS", "LOG URI")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an exit that unwinds, so the worker is stopped on the way out."""
    raise SystemExit(128 + signum)


def _run_to_completion(command: list[str]) -> int:
    """Run ``command`` in the foreground; if this process is stopped first, stop it too."""
    process = subprocess.Popen(command)
    try:
        return process.wait()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def _dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


class Command(BaseCommand):
    help = (
        "Run the parser service end to end on the sample files: a real celery worker, "
        "one parse per file and a re-parse, then where each run's log is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--s3",
            action="store_true",
            help="Store files and logs in S3 served on this machine by moto, "
            "with dummy credentials.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=60.0,
            help="Seconds to wait for the worker to start, and then for all parses (default 60).",
        )
        parser.add_argument(
            "--samples",
            type=Path,
            default=Path(settings.BASE_DIR) / "samples",
            help="Folder of YEAR-Qn-SECTION.csv files to upload (default: the bundled samples).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        timeout: float = options["timeout"]
        samples: Path = options["samples"].resolve()
        try:
            if options["s3"]:
                self._run_against_local_s3(timeout=timeout, samples=samples)
            else:
                self._run(timeout=timeout, samples=samples)
        except CommandError:
            raise
        except Exception as error:
            raise DemoError(
                f"the demo failed: {type(error).__name__}: {error} (--traceback shows where)"
            ) from error

    def _run(self, *, timeout: float, samples: Path) -> None:
        var_dir = Path(settings.VAR_DIR)
        self._say(f"Var folder: {var_dir}")
        call_command("migrate", interactive=False, verbosity=0)
        self._describe_setup()
        worker = self._worker(var_dir)
        self._say(f"Starting the worker (its output: {worker.output}) ...")
        with worker:
            worker.wait_until_ready(timeout)
            data_files = upload_samples(samples)
            self._say(f"Uploaded {len(data_files)} data files; parsing them ...")
            runs = parse_all(data_files, worker=worker, timeout=timeout)
            self._print_runs(runs)
            check_stored(runs)
            self._say(f"\nEvery run's log is in storage, under a key of its own ({len(runs)}).")
            self._print_log(next((r for r in runs if r.state == "FAILURE"), runs[0]))
            self._say("Stopping the worker ...")
        self._say(f"Worker stopped (exit status {worker.returncode}).")

    def _run_against_local_s3(self, *, timeout: float, samples: Path) -> None:
        """Serve S3 locally, then run the demo in a new process configured for it.

        Settings are read once, when a process starts, and this one started before
        the server had an address. The new process reads the server's address from
        the same ``DEMO_S3_*`` variables a deployment would set.
        """
        var_dir = Path(settings.VAR_DIR)
        bucket = os.environ.get("DEMO_S3_BUCKET") or DEFAULT_BUCKET
        self._say("Starting a local S3 server ...")
        s3_env = {"DEMO_S3_BUCKET": bucket, "DEMO_VAR_DIR": str(var_dir)}
        with (
            local_s3(bucket, var_dir / "s3") as endpoint,
            environ({**s3_env, "DEMO_S3_ENDPOINT_URL": endpoint}),
        ):
            self.stdout.flush()
            status = _run_to_completion(
                [
                    sys.executable,
                    str(Path(settings.BASE_DIR) / "manage.py"),
                    "demo",
                    "--timeout",
                    str(timeout),
                    "--samples",
                    str(samples),
                ]
            )
        if status != 0:
            # The demo in the new process has already said what went wrong.
            raise SystemExit(status)

    def _worker(self, var_dir: Path) -> WorkerProcess:
        base_dir = str(settings.BASE_DIR)
        python_path = os.pathsep.join(filter(None, [base_dir, os.environ.get("PYTHONPATH")]))
        # The worker inherits DJANGO_SETTINGS_MODULE and every DEMO_* and AWS_* variable,
        # so it is configured exactly like this process.
        env = {
            **os.environ,
            "DEMO_VAR_DIR": str(var_dir),
            "PYTHONPATH": python_path,
        }
        return WorkerProcess(
            app="parser_service",
            queue=f"demo-{uuid.uuid4().hex[:8]}",
            cwd=Path(base_dir),
            env=env,
            output=var_dir / "logs" / "worker.out",
        )

    def _describe_setup(self) -> None:
        storage = storages["default"]
        bucket = getattr(storage, "bucket_name", None)
        endpoint = getattr(storage, "endpoint_url", None)
        place = (
            f"s3://{bucket} at {endpoint or 'AWS'}" if bucket else getattr(storage, "location", "")
        )
        broker = maybe_sanitize_url(settings.CELERY_BROKER_URL)
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
        self._say(f"Broker: {broker}" + (f" (messages in {folder})" if folder else ""))
        self._say(f"Results: {maybe_sanitize_url(settings.CELERY_RESULT_BACKEND)}")
        self._say(f"Storage: {type(storage).__name__}, {place}")
        self._say(f"Log keys: {settings.CELERY_PARSELOG_KEY}(.gz)")

    def _print_runs(self, runs: list[ParseRun]) -> None:
        rows = [
            [
                run.task_id[:8],
                str(run.data_file_id),
                run.data_file.filename,
                _dash(run.reparse_id),
                run.state,
                _dash(run.log_bytes),
                str(run.warnings),
                str(run.errors),
                _dash(run.log_uri),
            ]
            for run in runs
        ]
        self._say("\n" + format_table(_HEADERS, rows))

    def _print_log(self, run: ParseRun) -> None:
        rule = "-" * 72
        self._say(
            f"\nLog of task {run.task_id[:8]} ({run.data_file.filename}, {run.state}), "
            f"decompressed from {run.log_uri}:\n{rule}"
        )
        self.stdout.write(read_log(run).rstrip("\n"))
        self._say(rule)

    def _say(self, text: str) -> None:
        self.stdout.write(text)
