"""A real ``celery worker`` subprocess of the service, started and stopped by the demo.

The worker is the same command a deployment runs. It gets a queue of its own, so a
demo never takes tasks meant for another worker (or left over from an interrupted
demo), and its own session, so a Ctrl-C meant for the demo does not reach it
before the demo has asked it to stop.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from demo.errors import DemoError

__all__ = ["WorkerProcess"]

_POLL = 0.1


class WorkerProcess:
    """One solo-pool worker consuming one queue, with its output in a file."""

    def __init__(
        self, *, app: str, queue: str, cwd: Path, env: Mapping[str, str], output: Path
    ) -> None:
        self.app = app
        self.queue = queue
        self.cwd = cwd
        self.env = dict(env)
        self.output = output
        self.returncode: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._sink: IO[bytes] | None = None

    @property
    def command(self) -> list[str]:
        # Solo pool: SQLite takes one writer at a time, and one process is plenty here.
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app,
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--parselog",
            "--hostname",
            f"{self.queue}@%h",
            "--queues",
            self.queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

    def start(self) -> None:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._sink = self.output.open("wb")
        self._process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return (
            self.output.read_text(encoding="utf-8", errors="replace")
            if self.output.exists()
            else ""
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def check_running(self) -> None:
        """Raise :class:`DemoError`, with the worker's last lines, if it has exited."""
        if self._process is None:
            raise DemoError("the worker was never started")
        code = self._process.poll()
        if code is not None:
            raise DemoError(
                f"the worker exited with status {code}. Its last lines ({self.output}):\n"
                f"{self.tail()}"
            )

    def wait_until_ready(self, timeout: float) -> None:
        """Wait for Celery's "ready." line, which comes once the worker consumes its queue."""
        ready = re.compile(rf"{re.escape(self.queue)}@\S+ ready\.")
        deadline = time.monotonic() + timeout
        while not ready.search(self.text()):
            self.check_running()
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the worker was not ready after {timeout:g} s. Its last lines "
                    f"({self.output}):\n{self.tail()}"
                )
            time.sleep(_POLL)

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask for a warm shutdown (SIGTERM) and wait; kill it if it does not stop in time.

        Returns whether it stopped on its own.
        """
        process, clean = self._process, True
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                clean = False
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if process is not None:
            self.returncode = process.returncode
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        return clean

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.stop() and kind is None:
            raise DemoError(f"the worker did not stop on SIGTERM and was killed ({self.output})")
