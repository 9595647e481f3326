"""Real servers for the tests that need them: a private Redis, and moto's S3 over HTTP.

Shared by the end-to-end and demo tests so both start them the same way. A missing
``redis-server`` fails the test (never a skip): CI installs it, and the end-to-end
tests are part of what the suite promises.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

__all__ = ["free_port", "moto_s3", "redis_server", "s3_client"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
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


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server on a free port that keeps nothing on disk; yields its URL."""
    program = shutil.which("redis-server")
    if program is None:
        pytest.fail(
            "redis-server is not installed; these tests need it (apt-get install redis-server)"
        )
    port = free_port()
    process = subprocess.Popen(
        [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def s3_client(endpoint: str) -> Any:
    """A client with dummy credentials; nothing of the machine's AWS set-up is read."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """moto's S3 server in this process over real HTTP, with ``bucket`` made; yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    try:
        yield endpoint
    finally:
        server.stop()
