"""S3 backend (AWS S3 and S3-compatible stores: R2, MinIO, Wasabi) through boto3.

Uploads go through boto3's transfer manager (multipart above `multipart_threshold_bytes`), are checked with a
HEAD, and carry `Content-Type: video/mp4`. URLs are `public_base_url/<key>` for a public bucket or CDN, else
presigned GET URLs (SigV4) valid for `url_expiry_s`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .base import Storage, StorageConfigError, StorageError, StoredObject, check_key, file_size

MiB = 1024 * 1024
MIN_PART_BYTES = 5 * MiB  # S3 refuses smaller parts (except the last)
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4 presigned URLs live at most 7 days
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _addressing_style(bucket: str, endpoint_url: str | None) -> str:
    """Path style for S3-compatible endpoints (MinIO & co.) and dotted bucket names (TLS wildcard certificates
    do not cover them); else regional virtual-hosted style: boto3's "auto" presigns against the global endpoint,
    whose redirect breaks SigV4 URLs for buckets outside us-east-1."""
    return "path" if endpoint_url or "." in bucket else "virtual"


class S3Storage(Storage):
    name = "s3"

    def __init__(self, *, bucket: str, region: str | None = None, endpoint_url: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None, prefix: str = "",
                 public_base_url: str | None = None, url_expiry_s: int = 3600,
                 multipart_threshold_bytes: int = 64 * MiB) -> None:
        if bool(access_key_id) != bool(secret_access_key):
            raise StorageConfigError("set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither "
                                     "(then the default AWS credential chain is used)")
        if not 1 <= int(url_expiry_s) <= MAX_PRESIGN_S:
            raise StorageConfigError(f"S3 url_expiry_s must be between 1 and {MAX_PRESIGN_S} s, got {url_expiry_s}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.url_expiry_s = int(url_expiry_s)
        threshold = max(int(multipart_threshold_bytes), MIN_PART_BYTES)
        self._transfer = TransferConfig(multipart_threshold=threshold, multipart_chunksize=threshold,
                                        max_concurrency=4)
        session = boto3.session.Session(aws_access_key_id=access_key_id or None,
                                        aws_secret_access_key=secret_access_key or None, region_name=region or None)
        config = Config(
            signature_version="s3v4",  # boto3 would presign SigV2-style for custom endpoints otherwise
            s3={"addressing_style": _addressing_style(bucket, endpoint_url)},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10, read_timeout=60,
        )
        self._client = session.client("s3", endpoint_url=endpoint_url or None, config=config)

    def object_key(self, key: str) -> str:
        """The S3 key of `key`: under `prefix` when one is set."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, e: Exception) -> StorageError:
        return StorageError(f"S3 {action} of s3://{self.bucket}/{self.object_key(key)} failed: {e}")

    def put_file(self, path: Path, key: str, content_type: str = "video/mp4") -> StoredObject:
        s3_key = self.object_key(key)
        size = file_size(path)
        try:
            self._client.upload_file(str(path), self.bucket, s3_key, ExtraArgs={"ContentType": content_type},
                                     Config=self._transfer)
            head = self._client.head_object(Bucket=self.bucket, Key=s3_key)
        except (Boto3Error, BotoCoreError, ClientError) as e:
            raise self._fail("upload", key, e) from e
        if head["ContentLength"] != size:
            raise StorageError(f"s3://{self.bucket}/{s3_key} has {head['ContentLength']} bytes, expected {size}")
        return StoredObject(key=key, size=size, url=self.url(key))

    def url(self, key: str, expires_s: int | None = None) -> str | None:
        s3_key = self.object_key(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(s3_key)}"
        expires = self.url_expiry_s if expires_s is None else min(max(int(expires_s), 1), MAX_PRESIGN_S)
        try:
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": s3_key}, ExpiresIn=expires)
        except (BotoCoreError, ClientError) as e:
            raise self._fail("presign", key, e) from e

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in _MISSING_CODES:
                return False
            raise self._fail("HEAD", key, e) from e
        except BotoCoreError as e:
            raise self._fail("HEAD", key, e) from e
        return True

    def delete(self, key: str) -> None:
        try:  # S3 answers 204 for a missing key too
            self._client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except (BotoCoreError, ClientError) as e:
            raise self._fail("delete", key, e) from e

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as e:
            raise StorageError(f"S3 bucket {self.bucket!r} is not reachable: {e}") from e

    def close(self) -> None:
        self._client.close()
