"""Servers for the demo tests: a private Redis, and moto's S3 server that the test itself owns."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import moto_s3, redis_server, s3_client

BUCKET = "parser-service-tests"

__all__ = ["BUCKET", "s3_client"]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis server of this module's own, on a free port, keeping nothing on disk."""
    with redis_server() as url:
        yield url


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in this test process, so the bucket can be read after the demo exits."""
    with moto_s3(BUCKET) as endpoint:
        yield endpoint
