"""A local server speaking the Supabase Storage API endpoints that the `supabase`/`storage3` client calls.

Faithful to storage-api where it matters to a client: paths under `/storage/v1`, multipart upload with
`x-upsert`, `POST /object/sign/...` returning a relative `signedURL` with a JWT (HS256, claims url/iat/exp) that
the download route verifies, public object route, `DELETE /object/{bucket}` with `{"prefixes": [...]}`, the JSON
object info route, `GET /bucket/{id}`, and errors rendered as storage-api does: HTTP 400 for every error that is
not a 500, the real status in the body (`{"statusCode": "404", "code": ..., "error": ..., "message": ...}`).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = "/storage/v1"


@dataclass
class StoredBlob:
    data: bytes
    content_type: str
    cache_control: str
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

CREATED_AT = "2026-01-01T00:00:00.000Z"  # storage-api answers ISO timestamps for buckets


@dataclass
class Bucket:
    public: bool = False
    file_size_limit: int | None = None
    objects: dict[str, StoredBlob] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.error = status, code, message, error or code


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeSupabase:
    """The server; `service_key` is the only key accepted. Inspect `requests`, script `fail_uploads`."""

    def __init__(self, service_key: str = "service-role-key") -> None:
        self.service_key = service_key
        self.buckets: dict[str, Bucket] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, lower-case headers)
        self.upload_parts: list[dict[str, str]] = []  # headers of each uploaded file part
        self.fail_uploads = 0  # answer the next N uploads with a 500
        self.clock_offset_s = 0.0  # moves the server's clock (expiry tests)
        self._jwt_secret = uuid.uuid4().bytes
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeSupabase:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- tokens -------------------------------------------------------------------------------------------
    def _sign_token(self, url: str, expires_in: int) -> str:
        now = int(time.time() + self.clock_offset_s)
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = _b64url(json.dumps({"url": url, "iat": now, "exp": now + expires_in}).encode())
        mac = hmac.new(self._jwt_secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
        return f"{header}.{claims}.{_b64url(mac)}"

    def _check_token(self, token: str, url: str) -> None:
        try:
            header, claims, mac = token.split(".")
            expected = hmac.new(self._jwt_secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
            valid = hmac.compare_digest(_b64url_decode(mac), expected)
            payload = json.loads(_b64url_decode(claims))
        except (ValueError, TypeError) as e:
            raise ApiError(400, "InvalidJWT", "jwt malformed") from e
        if not valid:
            raise ApiError(400, "InvalidJWT", "invalid signature")
        if payload.get("url") != url:
            raise ApiError(400, "InvalidSignature", "Invalid signature")
        if payload["exp"] < time.time() + self.clock_offset_s:
            raise ApiError(400, "InvalidJWT", "jwt expired")

    # --- routes -------------------------------------------------------------------------------------------
    def _bucket(self, name: str) -> Bucket:
        bucket = self.buckets.get(name)
        if bucket is None:
            raise ApiError(404, "NoSuchBucket", "Bucket not found", error="Bucket not found")
        return bucket

    def _object(self, bucket_name: str, path: str) -> StoredBlob:
        blob = self._bucket(bucket_name).objects.get(path)
        if blob is None:
            raise ApiError(404, "NoSuchKey", "Object not found", error="not_found")
        return blob

    def _require_service_key(self, headers: dict[str, str]) -> None:
        if headers.get("authorization") != f"Bearer {self.service_key}" or headers.get("apikey") != self.service_key:
            raise ApiError(403, "AccessDenied", "invalid signature", error="Unauthorized")

    def route(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        """(HTTP status, headers, body) for one request; ApiError for the API's error answers."""
        split = urlsplit(raw_path)
        if not split.path.startswith(PREFIX + "/"):
            raise ApiError(404, "NotFound", f"Route {method}:{split.path} not found")
        parts = [unquote(p) for p in split.path[len(PREFIX) + 1:].split("/")]
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        if parts[:2] == ["object", "public"] and method == "GET":
            return self._get_public(parts[2], "/".join(parts[3:]))
        if parts[:2] == ["object", "sign"] and method == "GET":
            return self._get_signed(parts[2], "/".join(parts[3:]), query.get("token", ""))
        self._require_service_key(headers)
        if parts[0] == "bucket" and method == "GET" and len(parts) == 2:
            bucket = self._bucket(parts[1])
            return self._json({"id": parts[1], "name": parts[1], "owner": "", "public": bucket.public,
                               "type": "STANDARD", "file_size_limit": bucket.file_size_limit,
                               "allowed_mime_types": None, "created_at": CREATED_AT, "updated_at": CREATED_AT})
        if parts[:2] == ["object", "sign"] and method == "POST":
            return self._sign(parts[2], "/".join(parts[3:]), json.loads(body or b"{}"))
        if parts[:2] == ["object", "info"] and method == "GET":
            return self._info(parts[2], "/".join(parts[3:]))
        if parts[0] == "object" and method == "POST" and len(parts) >= 3:
            return self._upload(parts[1], "/".join(parts[2:]), headers, body)
        if parts[0] == "object" and method == "DELETE" and len(parts) == 2:
            return self._remove(parts[1], json.loads(body or b"{}"))
        raise ApiError(404, "NotFound", f"Route {method}:{split.path} not found")

    @staticmethod
    def _json(payload: object, status: int = 200) -> tuple[int, dict, bytes]:
        return status, {"content-type": "application/json; charset=utf-8"}, json.dumps(payload).encode()

    def _upload(self, bucket_name: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        if self.fail_uploads > 0:
            self.fail_uploads -= 1
            raise ApiError(500, "InternalError", "Internal server error", error="internal")
        bucket = self._bucket(bucket_name)
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"content-type: {headers.get('content-type', '')}\r\n\r\n".encode() + body)
        fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        if "file" not in fields:
            raise ApiError(400, "InvalidRequest", "No content provided")
        file_part = fields["file"]
        data = file_part.get_payload(decode=True) or b""
        self.upload_parts.append({k.lower(): str(v) for k, v in file_part.items()})
        if path in bucket.objects and headers.get("x-upsert") != "true":
            raise ApiError(409, "Duplicate", "The resource already exists", error="Duplicate")
        if bucket.file_size_limit is not None and len(data) > bucket.file_size_limit:
            raise ApiError(413, "EntityTooLarge", "The object exceeded the maximum allowed size",
                           error="Payload too large")
        cache_control = fields["cacheControl"].get_content().strip() if "cacheControl" in fields else "no-cache"
        blob = StoredBlob(data, file_part.get_content_type(), f"max-age={cache_control}")
        bucket.objects[path] = blob
        return self._json({"Key": f"{bucket_name}/{path}", "Id": blob.id})

    def _info(self, bucket_name: str, path: str) -> tuple[int, dict, bytes]:
        blob = self._object(bucket_name, path)
        return self._json({
            "id": blob.id, "name": path, "version": blob.id, "bucket_id": bucket_name, "size": len(blob.data),
            "content_type": blob.content_type, "cache_control": blob.cache_control,
            "etag": f'"{hashlib.md5(blob.data).hexdigest()}"', "metadata": {},
            "last_modified": blob.created_at, "created_at": blob.created_at})

    def _sign(self, bucket_name: str, path: str, payload: dict) -> tuple[int, dict, bytes]:
        try:
            expires_in = int(payload["expiresIn"])
        except (KeyError, TypeError, ValueError) as e:
            raise ApiError(400, "InvalidRequest", "body must have required property 'expiresIn'") from e
        if expires_in < 1:
            raise ApiError(400, "InvalidRequest", "body/expiresIn must be >= 1")
        self._object(bucket_name, path)
        token = self._sign_token(f"{bucket_name}/{path}", expires_in)
        return self._json({"signedURL": f"/object/sign/{bucket_name}/{path}?token={token}"})

    def _get_signed(self, bucket_name: str, path: str, token: str) -> tuple[int, dict, bytes]:
        self._check_token(token, f"{bucket_name}/{path}")
        return self._blob_response(self._object(bucket_name, path))

    def _get_public(self, bucket_name: str, path: str) -> tuple[int, dict, bytes]:
        if not self._bucket(bucket_name).public:
            raise ApiError(404, "NoSuchKey", "Object not found", error="not_found")
        return self._blob_response(self._object(bucket_name, path))

    @staticmethod
    def _blob_response(blob: StoredBlob) -> tuple[int, dict, bytes]:
        return 200, {"content-type": blob.content_type, "cache-control": blob.cache_control}, blob.data

    def _remove(self, bucket_name: str, payload: dict) -> tuple[int, dict, bytes]:
        bucket = self._bucket(bucket_name)
        removed = []
        for path in payload.get("prefixes", []):
            blob = bucket.objects.pop(path, None)
            if blob is not None:
                removed.append({"name": path, "bucket_id": bucket_name, "id": blob.id, "metadata": {}})
        return self._json(removed)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append((self.command, self.path, headers))
                    try:
                        status, out_headers, out = fake.route(self.command, self.path, headers, body)
                    except ApiError as e:  # storage-api: HTTP 400 unless 500, real status in the body
                        status, out_headers, out = fake._json(
                            {"statusCode": str(e.status), "code": e.code, "error": e.error, "message": e.message},
                            500 if e.status == 500 else 400)
                self.send_response(status)
                for name, value in {**out_headers, "content-length": str(len(out))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler


def new_supabase_bucket(server: FakeSupabase, public: bool = False) -> str:
    """A fresh, empty bucket on `server`; returns its name."""
    name = f"videos-{uuid.uuid4().hex[:8]}"
    server.buckets[name] = Bucket(public=public)
    return name


def new_s3_bucket(admin) -> str:
    """A fresh bucket through a boto3 client (moto's S3 server); returns its name."""
    name = f"videos-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=name)
    return name
