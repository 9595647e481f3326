"""What every part of a run shares: sizes, folders, servers, and how children are run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.report import Outcome
from benchmarks.sizes import Sizes

if TYPE_CHECKING:
    from tests.servers import CountingS3Server, PostgresServer

__all__ = ["REPO", "Context", "PartResult", "child_entry", "run_child"]

REPO = Path(__file__).resolve().parents[1]
BUCKET = "parselog-bench"


@dataclass
class Context:
    sizes: Sizes
    work: Path
    redis_url: str = ""
    s3: CountingS3Server | None = None
    bucket: str = BUCKET
    postgres: PostgresServer | None = None
    # Django's DATABASES entry of the benchmark's database on ``postgres``, once made.
    postgres_database: dict[str, Any] | None = None

    @property
    def s3_endpoint(self) -> str:
        return self.s3.endpoint if self.s3 is not None else ""

    @property
    def database_template(self) -> Path:
        return self.work / "database" / "db.sqlite3"

    def prepare_database(self) -> None:
        """Migrate the benchmark project's database once; each child gets a copy of it.

        A copy per process rather than one shared file, so workers never wait on
        SQLite's lock for each other, and whatever the package stores per run is
        written as it would be in a project whose database is set up.
        """
        folder = self.database_template.parent
        folder.mkdir(parents=True, exist_ok=True)
        env = self.base_env(folder)
        env["BENCH_DB"] = str(self.database_template)
        self._migrate(env)
        if self.postgres is not None:
            # One database for every process on PostgreSQL: a server has no file lock.
            self.postgres_database = self.postgres.create_database("bench")
            self._migrate(self.base_env(folder, BENCH_DATABASE=self.postgres_json()))

    def postgres_json(self) -> str:
        if self.postgres_database is None:
            raise RuntimeError("the PostgreSQL database was not prepared")
        return json.dumps(self.postgres_database)

    def _migrate(self, env: dict[str, str]) -> None:
        completed = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"migrating the benchmark database failed:\n{completed.stderr}")

    def base_env(self, state_dir: Path, **extra: str) -> dict[str, str]:
        """A child's environment: the benchmark project, private servers, no AWS profile,
        and a migrated database of its own in ``state_dir`` (once one was prepared)."""
        state_dir.mkdir(parents=True, exist_ok=True)
        database = state_dir / "db.sqlite3"
        if self.database_template.exists() and not database.exists():
            shutil.copyfile(self.database_template, database)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "CELERY_", "DJANGO_", "BENCH_"))
        }
        env.update(
            PYTHONPATH=str(REPO),
            PYTHONDONTWRITEBYTECODE="1",
            DJANGO_SETTINGS_MODULE="benchmarks.proj.settings",
            BENCH_STATE_DIR=str(state_dir),
            BENCH_REDIS_URL=self.redis_url,
            BENCH_S3_ENDPOINT=self.s3_endpoint,
            BENCH_BUCKET=self.bucket,
            BENCH_DB=str(database) if database.exists() else ":memory:",
            AWS_CONFIG_FILE=str(state_dir / "missing-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(state_dir / "missing-aws-credentials"),
        )
        env.update(extra)
        return env


@dataclass
class PartResult:
    outcomes: list[Outcome]
    raw: dict[str, Any]
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def run_child(
    module: str,
    params: dict[str, Any],
    env: dict[str, str],
    folder: Path,
    *,
    timeout: float,
    sample: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run ``python -m module`` in a fresh interpreter and return the JSON it wrote.

    Measurements that read the process's own state (CPU time, RSS, loggers) run in a
    child, so nothing else this run started (moto's server threads, other parts'
    loggers) is in the process measured. ``sample`` is called about ten times a
    second while the child runs, to watch it from outside (disk use, for example).
    """
    folder.mkdir(parents=True, exist_ok=True)
    params_path, result_path = folder / "params.json", folder / "result.json"
    params_path.write_text(json.dumps(params))
    log_path = folder / "child.out"
    deadline = time.monotonic() + timeout
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(params_path), str(result_path)],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{module} did not finish in {timeout:.0f} s")
                if sample is not None:
                    sample()
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    if process.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{module} exited with {process.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def child_entry(main: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The ``__main__`` of a child: read the parameters, run, write the result."""
    params_path, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    result = main(json.loads(params_path.read_text()))
    result_path.write_text(json.dumps(result))
