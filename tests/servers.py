"""Real servers for the tests and the benchmarks: Redis, PostgreSQL, and moto's S3 over HTTP.

One module for both, so a test and a benchmark start a server the same way. Each
server is private: a free port on 127.0.0.1, its data in a temporary folder, gone
when it stops. A missing server program raises (the test fails, never skips): CI
installs them, and what the real parts promise is part of what the suite checks.

The S3 server is moto's own WSGI application served over real HTTP, the way
``moto.server.ThreadedMotoServer`` serves it, wrapped in a thin WSGI layer that
records every request it receives (method, path and query). Counting there counts
real HTTP requests, whatever client or process sent them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CountingS3Server",
    "PostgresServer",
    "RedisServer",
    "S3Request",
    "SlowLink",
    "classify",
    "free_port",
    "moto_s3",
    "postgres_server",
    "redis_server",
    "s3_client",
    "slow_link",
    "summarize",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None, what: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


# -- Redis ---------------------------------------------------------------------------


class RedisServer:
    """A ``redis-server`` on a free port that keeps nothing on disk."""

    def __init__(self) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise RuntimeError(
                "redis-server is not installed; it is needed here (apt-get install redis-server)"
            )
        self.port = free_port()
        self._process = subprocess.Popen(
            [
                *(program, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, self._process, "redis-server")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private Redis server; yields its URL."""
    server = RedisServer()
    try:
        yield server.url
    finally:
        server.stop()


# -- PostgreSQL ----------------------------------------------------------------------

POSTGRES_PACKAGE = "postgresql"
_SUPERUSER = "postgres"


def postgres_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: Debian keeps them out of ``PATH``, per version."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A PostgreSQL server of its own: ``initdb`` into a temporary folder, then ``pg_ctl``.

    It listens on 127.0.0.1 only, trusts local connections, and is stopped and removed
    by :meth:`stop`. PostgreSQL refuses to run as root, so when this process is root
    (as CI is) the server's programs run as the ``postgres`` user that Debian's package
    creates, and the folder is handed to that user.

    ``durable=False`` turns off ``fsync`` and synchronous commits, for tests that only
    need a real server; the benchmarks keep the defaults, to measure what a project pays.
    """

    def __init__(self, *, durable: bool = True) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL is not installed; it is needed here "
                f"(apt-get install {POSTGRES_PACKAGE})"
            )
        self._bindir = bindir
        self._as_user: list[str] = []
        self.folder = Path(tempfile.mkdtemp(prefix="celery-parselog-pg-"))
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root, and runuser is missing to drop to postgres")
            self._as_user = [runuser, "-u", _SUPERUSER, "--"]
            shutil.chown(self.folder, user=_SUPERUSER)
        self.port = free_port()
        self._data = self.folder / "data"
        try:
            self._run("initdb", "-D", str(self._data), "-U", _SUPERUSER, "--auth=trust")
            options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            self._run(
                "pg_ctl",
                *("-D", str(self._data), "-l", str(self.folder / "server.log")),
                *("-o", options, "-w", "-t", "60", "start"),
            )
            wait_for_port(self.port, None, "postgres")
        except BaseException:
            self.stop()
            raise

    def _run(self, program: str, *args: str) -> None:
        completed = subprocess.run(
            [*self._as_user, str(self._bindir / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.folder,
        )
        if completed.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({completed.returncode}):\n"
                f"{completed.stdout}{completed.stderr}{tail}"
            )

    def create_database(self, name: str) -> dict[str, Any]:
        """Create database ``name``; return Django's ``DATABASES`` entry for it."""
        import psycopg

        with psycopg.connect(**self.connect_args("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": _SUPERUSER,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }

    def connect_args(self, database: str) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "user": _SUPERUSER, "dbname": database}

    def stop(self) -> None:
        if (self._data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(*, durable: bool = True) -> Iterator[PostgresServer]:
    """A private PostgreSQL server (see :class:`PostgresServer`)."""
    server = PostgresServer(durable=durable)
    try:
        yield server
    finally:
        server.stop()


# -- S3 ------------------------------------------------------------------------------


def s3_client(endpoint: str) -> Any:
    """A client with dummy credentials; nothing of the machine's AWS set-up is read."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    query: str


def classify(request: S3Request) -> str:
    """Name an S3 request the way the targets speak of them: PUT, HEAD, GET, LIST, …"""
    parts = [part for part in request.path.split("/") if part]
    on_object = len(parts) >= 2
    if request.method == "PUT":
        if "partNumber=" in request.query:
            return "PUT part"
        return "PUT" if on_object else "PUT bucket"
    if request.method == "GET":
        return "GET" if on_object else "LIST"
    if request.method == "POST" and "uploads" in request.query:
        return "POST multipart"
    return request.method


def summarize(requests: Iterable[S3Request]) -> dict[str, int]:
    return dict(Counter(classify(request) for request in requests))


class CountingS3Server:
    """moto's S3 over HTTP in a thread of this process, recording each request."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # werkzeug logs every request at INFO; the count is kept here instead.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._lock = threading.Lock()
        self._requests: list[S3Request] = []
        app = DomainDispatcherApplication(create_backend_app)

        def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            request = S3Request(
                str(environ.get("REQUEST_METHOD", "")),
                str(environ.get("PATH_INFO", "")),
                str(environ.get("QUERY_STRING", "")),
            )
            with self._lock:
                self._requests.append(request)
            return app(environ, start_response)

        self._server = make_server(
            "127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler
        )
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def client(self) -> Any:
        return s3_client(self.endpoint)

    def mark(self) -> int:
        """A position in the request log; pass it to :meth:`since`."""
        with self._lock:
            return len(self._requests)

    def since(self, mark: int) -> list[S3Request]:
        with self._lock:
            return list(self._requests[mark:])

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """moto's S3 server in this process over real HTTP, with ``bucket`` made; yields its URL."""
    server = CountingS3Server()
    try:
        server.client().create_bucket(Bucket=bucket)
        yield server.endpoint
    finally:
        server.stop()


# -- A slow link ---------------------------------------------------------------------


class SlowLink:
    """A TCP proxy to ``upstream`` that carries what its clients send at ``bytes_per_second``
    on each connection, the way a slow uplink does; answers come back at full speed.

    Workers pointed at it upload a large log slowly and a small one at once, so uploads
    finish in another order than the runs did, as they do on a real slow link.
    """

    _CHUNK = 16 * 1024

    def __init__(self, upstream: str, bytes_per_second: int) -> None:
        target = urllib.parse.urlsplit(upstream)
        self._target = (target.hostname or "127.0.0.1", target.port or 80)
        self._rate = bytes_per_second
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.extend((client, upstream))
        threading.Thread(target=self._carry, args=(upstream, client, 0), daemon=True).start()
        self._carry(client, upstream, self._rate)

    def _carry(self, source: socket.socket, sink: socket.socket, rate: int) -> None:
        """Copy until ``source`` closes; with a ``rate``, wait after each chunk for as long
        as the link takes to carry it."""
        try:
            while chunk := source.recv(self._CHUNK):
                sink.sendall(chunk)
                if rate:
                    time.sleep(len(chunk) / rate)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()
            self._open.clear()


@contextlib.contextmanager
def slow_link(upstream: str, bytes_per_second: int) -> Iterator[SlowLink]:
    """A :class:`SlowLink` to ``upstream`` for the length of the block."""
    link = SlowLink(upstream, bytes_per_second)
    try:
        yield link
    finally:
        link.stop()
