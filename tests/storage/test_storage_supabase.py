"""The Supabase backend against a local server speaking the Storage API (tests/storage/supabase_server.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from storage_contract import StorageContract
from supabase_server import FakeSupabase, new_supabase_bucket

from storage import Storage, StorageError, create_storage, put_file_retrying


@pytest.fixture(scope="module")
def server(supabase_server) -> FakeSupabase:
    return supabase_server


def new_bucket(server: FakeSupabase, public: bool = False) -> str:
    return new_supabase_bucket(server, public)


@pytest.fixture
def bucket_name(server) -> str:
    return new_bucket(server)


def make(server: FakeSupabase, bucket: str, **options) -> Storage:
    return create_storage("supabase", {"url": server.url, "key": server.service_key, "bucket": bucket, **options},
                          local_root=Path("/nonexistent"))


def download(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5)


@pytest.fixture(scope="module")
def private_storage(server) -> Storage:
    return make(server, new_bucket(server))


@pytest.fixture(scope="module")
def public_storage(server) -> Storage:
    return make(server, new_bucket(server, public=True), public=True, prefix="renders/v1")


class TestSupabaseSignedUrls(StorageContract):
    @pytest.fixture
    def storage(self, private_storage) -> Storage:
        return private_storage

    def read_back(self, storage: Storage, key: str) -> bytes:
        response = download(storage.url(key))
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
        return response.content


class TestSupabasePublicBucket(StorageContract):
    @pytest.fixture
    def storage(self, public_storage) -> Storage:
        return public_storage

    def read_back(self, storage: Storage, key: str) -> bytes:
        url = storage.url(key)
        assert "/storage/v1/object/public/" in url and "/renders/v1/" in url
        return download(url).content


def test_upload_request_is_what_supabase_expects(server, bucket_name, video_file) -> None:
    storage = make(server, bucket_name)
    server.requests.clear()
    storage.put_file(video_file, "jobs/j/video.mp4")
    method, path, headers = server.requests[0]
    assert (method, path) == ("POST", f"/storage/v1/object/{bucket_name}/jobs/j/video.mp4")
    assert headers["authorization"] == f"Bearer {server.service_key}" and headers["x-upsert"] == "true"
    assert server.upload_parts[-1]["content-type"] == "video/mp4"
    assert [m for m, _, _ in server.requests] == ["POST", "GET", "POST"]  # upload, info (size check), sign


def test_signed_url_carries_the_expiry_and_fails_when_tampered_or_expired(server, bucket_name, video_file) -> None:
    storage = make(server, bucket_name, url_expiry_s=600)
    storage.put_file(video_file, "v.mp4")
    url = storage.url("v.mp4", expires_s=60)
    assert download(url).status_code == 200
    token = url.split("token=")[1]
    tampered = url.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    assert download(tampered).json()["message"] == "invalid signature"
    other = url.replace("/v.mp4?", "/w.mp4?")
    assert download(other).status_code == 400
    server.clock_offset_s = 61
    try:
        assert download(url).json() == {"statusCode": "400", "code": "InvalidJWT", "error": "InvalidJWT",
                                        "message": "jwt expired"}
        assert download(storage.url("v.mp4", expires_s=120)).status_code == 200
    finally:
        server.clock_offset_s = 0


def test_wrong_key_is_a_storage_error(server, bucket_name, video_file) -> None:
    storage = create_storage("supabase", {"url": server.url, "key": "anon-key", "bucket": bucket_name},
                             local_root=Path("/nonexistent"))
    with pytest.raises(StorageError, match="403 Unauthorized: invalid signature"):
        storage.put_file(video_file, "v.mp4")
    with pytest.raises(StorageError, match="403"):
        storage.exists("v.mp4")
    with pytest.raises(StorageError, match="not reachable"):
        storage.check()


def test_missing_bucket_is_an_error_not_a_missing_object(server, video_file) -> None:
    storage = make(server, "no-such-bucket")
    with pytest.raises(StorageError, match="404 Bucket not found: Bucket not found"):
        storage.put_file(video_file, "v.mp4")
    with pytest.raises(StorageError, match="Bucket not found"):
        storage.exists("v.mp4")
    with pytest.raises(StorageError, match="not reachable"):
        storage.check()


def test_signing_a_missing_object_is_a_storage_error(server, bucket_name) -> None:
    with pytest.raises(StorageError, match="404 not_found: Object not found"):
        make(server, bucket_name).url("never.mp4")


def test_bucket_size_limit_is_reported(server, bucket_name, video_file) -> None:
    server.buckets[bucket_name].file_size_limit = 1000
    with pytest.raises(StorageError, match="413 Payload too large"):
        make(server, bucket_name).put_file(video_file, "v.mp4")


def test_transient_500_is_retried(server, bucket_name, video_file) -> None:
    storage, sleeps = make(server, bucket_name), []
    server.fail_uploads = 2
    stored = put_file_retrying(storage, video_file, "v.mp4", delays_s=(0.1, 0.2, 0.4), sleep=sleeps.append)
    assert stored.size == video_file.stat().st_size and sleeps == [0.1, 0.2]


def test_unreachable_server_is_a_storage_error(video_file) -> None:
    storage = create_storage("supabase", {"url": "http://127.0.0.1:9", "key": "k", "bucket": "b"},
                             local_root=Path("/nonexistent"))
    with pytest.raises(StorageError, match="Supabase upload of b/v.mp4 failed"):
        storage.put_file(video_file, "v.mp4")


def test_invalid_url_is_a_config_error() -> None:
    from storage import StorageConfigError

    with pytest.raises(StorageConfigError, match="SUPABASE_URL"):
        create_storage("supabase", {"url": "ftp://x", "key": "k", "bucket": "b"}, local_root=Path("/x"))
