"""Private servers for one benchmark run: Redis, and moto's S3 server with a request log.

The S3 server is moto's own WSGI application served over real HTTP on 127.0.0.1,
the way ``moto.server.ThreadedMotoServer`` serves it, wrapped in a thin WSGI layer
that records every request it receives (method, path and query). Counting there
counts real HTTP requests, whatever client or process sent them.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["CountingS3Server", "RedisServer", "S3Request", "classify"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


class RedisServer:
    """A ``redis-server`` on a free port, without persistence; fails loudly if missing."""

    def __init__(self) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise RuntimeError(
                "redis-server is not installed; the benchmarks need it "
                "(apt-get install redis-server)"
            )
        self.port = free_port()
        self._process = subprocess.Popen(
            [
                program,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self._process, "redis-server")

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
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

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
