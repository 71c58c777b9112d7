"""The S3 backend over real HTTP against moto's S3 server on a loopback port.

moto does not verify request signatures (a tampered presigned URL still answers 200), so these tests check what
the backend sends and stores, not AWS's signature checking.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from storage_contract import StorageContract
from supabase_server import new_s3_bucket

from storage import Storage, StorageConfigError, StorageError, create_storage, put_file_retrying

CREDENTIALS = {"access_key_id": "AKIDTESTTESTTEST", "secret_access_key": "test-secret"}


@pytest.fixture
def endpoint(s3_endpoint) -> str:
    return s3_endpoint


@pytest.fixture(scope="module")
def admin(s3_admin):
    return s3_admin


def new_bucket(admin) -> str:
    return new_s3_bucket(admin)


def make(endpoint: str, bucket: str, **options) -> Storage:
    return create_storage("s3", {"bucket": bucket, "endpoint_url": endpoint, "region": "us-east-1",
                                 **CREDENTIALS, **options}, local_root=Path("/nonexistent"))


@pytest.fixture(scope="module")
def presigning_storage(s3_endpoint, admin) -> Storage:
    return make(s3_endpoint, new_bucket(admin), url_expiry_s=900)


@pytest.fixture(scope="module")
def public_storage(s3_endpoint, admin) -> Storage:
    """A bucket whose objects anyone may GET, as behind a CDN or a public R2 domain."""
    bucket = new_bucket(admin)
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    return make(s3_endpoint, bucket, prefix="/renders/v1/", public_base_url=f"{s3_endpoint}/{bucket}/")


class TestS3PresignedUrls(StorageContract):
    @pytest.fixture
    def storage(self, presigning_storage) -> Storage:
        return presigning_storage

    def read_back(self, storage: Storage, key: str) -> bytes:
        response = httpx.get(storage.url(key, expires_s=300), timeout=10)
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
        return response.content


class TestS3PublicBaseUrl(StorageContract):
    @pytest.fixture
    def storage(self, public_storage) -> Storage:
        return public_storage

    def read_back(self, storage: Storage, key: str) -> bytes:
        url = storage.url(key)
        assert "X-Amz-Signature" not in url and f"/renders/v1/{key}" in url
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200
        return response.content


def test_presigned_url_is_sigv4_with_the_requested_expiry(presigning_storage, video_file) -> None:
    presigning_storage.put_file(video_file, "p.mp4")
    query = parse_qs(urlsplit(presigning_storage.url("p.mp4", expires_s=120)).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["120"]
    assert query["X-Amz-Credential"][0].startswith("AKIDTESTTESTTEST/")
    default = parse_qs(urlsplit(presigning_storage.url("p.mp4")).query)
    assert default["X-Amz-Expires"] == ["900"]


def test_objects_land_under_the_prefix_with_the_content_type(public_storage, admin, video_file) -> None:
    stored = public_storage.put_file(video_file, "jobs/j/video.mp4")
    head = admin.head_object(Bucket=public_storage.bucket, Key="renders/v1/jobs/j/video.mp4")
    assert head["ContentType"] == "video/mp4" and head["ContentLength"] == stored.size
    assert stored.url == public_storage.url("jobs/j/video.mp4")


def test_large_files_go_up_in_parts(endpoint, admin, tmp_path) -> None:
    storage = make(endpoint, new_bucket(admin), multipart_threshold_bytes=5 * 1024 * 1024)
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    stored = storage.put_file(big, "big.mp4")
    head = admin.head_object(Bucket=storage.bucket, Key="big.mp4")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag: md5-of-parts "-" part count
    assert stored.size == big.stat().st_size and head["ContentType"] == "video/mp4"
    assert httpx.get(storage.url("big.mp4"), timeout=30).content == big.read_bytes()


def test_missing_bucket_is_a_storage_error(endpoint, video_file) -> None:
    storage = make(endpoint, "no-such-bucket")
    with pytest.raises(StorageError, match="s3://no-such-bucket/v.mp4 failed") as info:
        storage.put_file(video_file, "v.mp4")
    assert info.value.code == "storage_error"
    with pytest.raises(StorageError, match="not reachable"):
        storage.check()


def test_upload_is_retried_until_the_bucket_appears(endpoint, admin, video_file) -> None:
    bucket = f"late-{uuid.uuid4().hex[:8]}"
    storage, sleeps = make(endpoint, bucket), []

    def wait(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) == 2:
            admin.create_bucket(Bucket=bucket)

    stored = put_file_retrying(storage, video_file, "v.mp4", delays_s=(0.1, 0.2, 0.4), sleep=wait)
    assert stored.size == video_file.stat().st_size and sleeps == [0.1, 0.2]
    storage.check()


def test_unreachable_endpoint_is_a_storage_error(video_file) -> None:
    storage = make("http://127.0.0.1:9", "b")
    with pytest.raises(StorageError, match="S3 upload"):
        storage.put_file(video_file, "v.mp4")
    with pytest.raises(StorageError):
        storage.exists("v.mp4")


def test_default_credential_chain_is_used_without_keys(endpoint, admin, monkeypatch, video_file) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    bucket = new_bucket(admin)
    storage = create_storage("s3", {"bucket": bucket, "endpoint_url": endpoint, "region": "us-east-1"},
                             local_root=Path("/nonexistent"))
    storage.put_file(video_file, "v.mp4")
    assert "AKIDFROMENVIRONMENT%2F" in storage.url("v.mp4")


@pytest.mark.parametrize(("options", "message"), [
    ({"access_key_id": "only-the-id"}, "set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"),
    ({"url_expiry_s": 0}, "url_expiry_s must be between 1 and 604800"),
    ({"url_expiry_s": 8 * 24 * 3600}, "url_expiry_s must be between"),
])
def test_bad_settings_are_refused(options, message) -> None:
    with pytest.raises(StorageConfigError, match=message):
        create_storage("s3", {"bucket": "b", **options}, local_root=Path("/nonexistent"))
