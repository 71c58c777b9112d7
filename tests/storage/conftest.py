"""Fixtures of the storage tests: a file to upload, moto's S3 server and the local Supabase Storage server."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from supabase_server import FakeSupabase


@pytest.fixture
def video_file(tmp_path) -> Path:
    """150 kB of random bytes standing in for a rendered MP4 (the backends never look inside)."""
    path = tmp_path / "render.mp4"
    path.write_bytes(os.urandom(150_000))
    return path


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """moto's S3 server on a free loopback port (real HTTP; it does not verify signatures)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint):
    """A plain boto3 client, to look at buckets from outside the backend."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="y")


@pytest.fixture(scope="session")
def supabase_server() -> FakeSupabase:
    fake = FakeSupabase().start()
    yield fake
    fake.stop()
