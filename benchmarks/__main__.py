"""``python -m benchmarks run [--quick | --smoke] [--out DIR] [--only b1,b2,…]``.

Starts a private Redis, moto's S3 server and (for B2) a PostgreSQL server, runs the
parts one after another (each in child processes or worker subprocesses of its own),
and writes ``latest.json`` and ``latest.md``. The exit status is 0 when every part
ran, whatever the figures; a part that crashed makes it 1 (its rows say "failed" and
the JSON has the error).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import (
    b1_records,
    b2_tasks,
    b3_memory,
    b4_leaks,
    b5_concurrency,
    b6_preview,
    b7_compare,
)
from benchmarks.context import REPO, Context, PartResult
from benchmarks.machine import code_state, describe
from benchmarks.report import PARTS, Outcome, write_report
from benchmarks.sizes import MODES
from tests.servers import (
    POSTGRES_PACKAGE,
    CountingS3Server,
    PostgresServer,
    RedisServer,
    postgres_bindir,
)

RUNNERS: dict[str, Callable[[Context], PartResult]] = {
    "b1": b1_records.run,
    "b2": b2_tasks.run,
    "b3": b3_memory.run,
    "b4": b4_leaks.run,
    "b5": b5_concurrency.run,
    "b6": b6_preview.run,
    "b7": b7_compare.run,
}
_NEEDS_SERVERS = {"b2", "b3", "b4", "b5"}
_NEEDS_POSTGRES = {"b2"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the benchmarks and write the report")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes: only proves it all runs")
    run.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results",
        help="folder for latest.json and latest.md (default: benchmarks/results)",
    )
    run.add_argument(
        "--only",
        default=",".join(RUNNERS),
        help="comma-separated parts to run (default: all of b1,b2,b3,b4,b5,b6)",
    )
    run.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    return parser


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_postgres() -> None:
    """Install PostgreSQL from Debian's packages when its programs are missing."""
    if postgres_bindir() is not None:
        return
    _say(f"[benchmarks] installing {POSTGRES_PACKAGE} from Debian's packages")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", POSTGRES_PACKAGE],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def run_parts(ctx: Context, selected: Sequence[str]) -> tuple[dict[str, Any], dict[str, Outcome]]:
    parts: dict[str, Any] = {}
    outcomes: dict[str, Outcome] = {}
    for part in PARTS:
        if part not in selected:
            parts[part] = {"status": "skipped"}
            continue
        _say(f"[benchmarks] {part}: running")
        started = time.perf_counter()
        try:
            result = RUNNERS[part](ctx)
        except Exception as error:  # noqa: BLE001 - one broken part must not lose the others
            parts[part] = {
                "status": "failed",
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - started,
            }
            _say(f"[benchmarks] {part}: FAILED: {type(error).__name__}: {error}")
            continue
        seconds = time.perf_counter() - started
        parts[part] = {
            "status": "ok",
            "seconds": seconds,
            "method": result.method,
            "raw": result.raw,
        }
        outcomes.update((outcome.id, outcome) for outcome in result.outcomes)
        _say(f"[benchmarks] {part}: done in {seconds:.0f} s")
    return parts, outcomes


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(arguments)
    sizes = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    selected = [part.strip() for part in str(args.only).split(",") if part.strip()]
    unknown = set(selected) - set(RUNNERS)
    if unknown:
        _say(f"unknown parts: {', '.join(sorted(unknown))}")
        return 2
    machine = describe()
    code = code_state(REPO)
    started_utc = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="celery-parselog-bench-"))
    ctx = Context(sizes, work)
    redis: RedisServer | None = None
    try:
        if _NEEDS_SERVERS.intersection(selected):
            redis = RedisServer()
            ctx.redis_url = redis.url
            ctx.s3 = CountingS3Server()
            ctx.s3.client().create_bucket(Bucket=ctx.bucket)
            if _NEEDS_POSTGRES.intersection(selected):
                ensure_postgres()
                ctx.postgres = PostgresServer()
            ctx.prepare_database()
        parts, outcomes = run_parts(ctx, selected)
    finally:
        # A result the parts left for the collector unsubscribes from Redis when it is
        # collected. Collect now, while Redis is up: collected at exit, after Redis
        # stopped, Celery 5.3's Redis backend retries reconnecting for minutes.
        gc.collect()
        if ctx.s3 is not None:
            ctx.s3.stop()
        if redis is not None:
            redis.stop()
        if ctx.postgres is not None:
            ctx.postgres.stop()
        if args.keep:
            _say(f"[benchmarks] work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta = {
        "schema": 1,
        "command": "python -m benchmarks " + " ".join(arguments),
        "mode": sizes.mode,
        "sizes": sizes.as_dict(),
        "machine": machine,
        "code": code,
        "started_utc": started_utc,
        "duration_seconds": time.perf_counter() - started,
        "parts": parts,
    }
    json_path, md_path, rows = write_report(args.out, meta, outcomes)
    missed = [row["id"] for row in rows if row["met"] is False]
    _say(f"[benchmarks] wrote {json_path} and {md_path}")
    _say(f"[benchmarks] targets missed: {', '.join(missed) if missed else 'none'}")
    return 1 if any(part.get("status") == "failed" for part in parts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
