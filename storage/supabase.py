"""Supabase Storage backend through the `supabase` client.

Uploads are one multipart POST with `x-upsert: true` and `Content-Type: video/mp4`; the stored size is read back
from the object info endpoint. URLs are signed (valid `url_expiry_s`) or, for a public bucket, the public URL.
Supabase answers most errors with HTTP 400 and the real status in the JSON body (`{"statusCode": "404", ...}`),
so not-found is recognised by that body field.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
from storage3.exceptions import StorageApiError
from storage3.utils import StorageException
from supabase import ClientOptions, SupabaseException, create_client

from .base import Storage, StorageConfigError, StorageError, StoredObject, check_key, file_size

logger = logging.getLogger(__name__)
UPLOAD_TIMEOUT_S = 300  # one request carries the whole video
_ERRORS = (StorageException, httpx.HTTPError, SupabaseException, KeyError, ValueError)


def _is_not_found(e: Exception) -> bool:
    return isinstance(e, StorageApiError) and str(e.status) == "404"


class SupabaseStorage(Storage):
    name = "supabase"

    def __init__(self, *, url: str, key: str, bucket: str, public: bool = False, prefix: str = "",
                 url_expiry_s: int = 3600) -> None:
        if int(url_expiry_s) < 1:
            raise StorageConfigError(f"Supabase url_expiry_s must be at least 1 s, got {url_expiry_s}")
        self.bucket = bucket
        self.public = bool(public)
        self.prefix = prefix.strip("/")
        self.url_expiry_s = int(url_expiry_s)
        self._http = httpx.Client(timeout=httpx.Timeout(UPLOAD_TIMEOUT_S, connect=10.0))
        options = ClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=self._http)
        try:
            self._client = create_client(url, key, options=options)
        except SupabaseException as e:
            self._http.close()
            raise StorageConfigError(f"SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY rejected: {e.message}") from e
        self._bucket = self._client.storage.from_(bucket)

    def object_path(self, key: str) -> str:
        """The path of `key` inside the bucket: under `prefix` when one is set."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, e: Exception) -> StorageError:
        detail = f"{e.status} {e.code}: {e.message}" if isinstance(e, StorageApiError) else str(e)
        return StorageError(f"Supabase {action} of {self.bucket}/{self.object_path(key)} failed: {detail}")

    def put_file(self, path: Path, key: str, content_type: str = "video/mp4") -> StoredObject:
        object_path = self.object_path(key)
        size = file_size(path)
        try:
            self._bucket.upload(object_path, Path(path), {"content-type": content_type, "upsert": "true"})
            info = self._bucket.info(object_path)
        except _ERRORS as e:
            raise self._fail("upload", key, e) from e
        stored = info.get("size")
        if stored is None:  # storage servers before the JSON info endpoint: nothing to compare
            logger.warning("Supabase gave no size for %s/%s; size not checked", self.bucket, object_path)
        elif int(stored) != size:
            raise StorageError(f"Supabase object {self.bucket}/{object_path} has {stored} bytes, expected {size}")
        return StoredObject(key=key, size=size, url=self.url(key))

    def url(self, key: str, expires_s: int | None = None) -> str | None:
        object_path = self.object_path(key)
        if self.public:
            return self._bucket.get_public_url(object_path)
        expires = self.url_expiry_s if expires_s is None else max(int(expires_s), 1)
        try:
            signed = self._bucket.create_signed_url(object_path, expires)
        except _ERRORS as e:
            raise self._fail("URL signing", key, e) from e
        if not signed.get("signedURL"):
            raise StorageError(f"Supabase gave no signed URL for {self.bucket}/{object_path}")
        return signed["signedURL"]

    def exists(self, key: str) -> bool:
        object_path = self.object_path(key)
        try:
            self._bucket.info(object_path)
        except _ERRORS as e:
            if _is_not_found(e) and "bucket" not in str(e.message).lower():
                return False
            raise self._fail("lookup", key, e) from e
        return True

    def delete(self, key: str) -> None:
        try:  # answers [] for a missing object
            self._bucket.remove([self.object_path(key)])
        except _ERRORS as e:
            raise self._fail("delete", key, e) from e

    def check(self) -> None:
        try:
            self._client.storage.get_bucket(self.bucket)
        except _ERRORS as e:
            raise StorageError(f"Supabase bucket {self.bucket!r} is not reachable: {e}") from e

    def close(self) -> None:
        self._http.close()
