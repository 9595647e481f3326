"""S3 on this machine: moto's server mode on a free loopback port, with dummy credentials only.

Everything the demo and its worker send to S3 goes over real HTTP to that server,
so the S3 code path runs as it would against AWS, without an account. The machine's
own AWS variables and files are hidden for the duration, so no real credential can
be picked up by mistake.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from demo.environ import environ
from demo.errors import DemoError

__all__ = ["dummy_aws_environment", "local_s3"]

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dummy_aws_environment(scratch: Path) -> AbstractContextManager[None]:
    """Replace every ``AWS_*`` variable by dummy credentials, for this process and the worker.

    The config and credentials files point at paths that do not exist, so neither
    boto3 here nor the worker (which inherits this environment) reads ``~/.aws``.
    """
    return environ(
        {
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        },
        drop_prefix="AWS_",
    )


@contextmanager
def local_s3(bucket: str, scratch: Path) -> Iterator[str]:
    """Serve S3 on 127.0.0.1 with ``bucket`` created; yield the endpoint URL."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        raise DemoError(
            f"--s3 needs boto3 and moto's server mode ({error}); "
            "install them with: pip install 'moto[server]' boto3"
        ) from error
    # The server logs every request at INFO; the demo's console is not the place.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with dummy_aws_environment(scratch):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
            yield endpoint
        finally:
            server.stop()
