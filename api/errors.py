"""The one error type routes raise, and the one registry of error codes: code -> HTTP status.

`api_app` turns `ApiError` (and every domain error with a `code`) into JSON with the status found here; the
OpenAPI document (`api.contract`) documents each route's codes with the same statuses, so a code added here
is answered and documented alike.
"""

from __future__ import annotations

from typing import Any

from .logs import REQUEST_ID

# Every error code of ours -> HTTP status. Codes not listed (a renderer's own) answer 500.
ERROR_STATUS = {
    "unauthorized": 401, "forbidden": 403, "not_found": 404, "method_not_allowed": 405,
    "validation_error": 422, "unknown_field": 422, "invalid_image": 422, "invalid_audio": 422,
    "invalid_video": 422, "audio_too_long": 422, "no_face_detected": 422, "url_not_allowed": 422,
    "fetch_failed": 422, "payload_too_large": 413, "unsupported_media_type": 415,
    "idempotency_conflict": 409, "job_not_finished": 409, "job_not_retryable": 409, "canceled": 409,
    "queue_full": 429, "range_not_satisfiable": 416,
    "models_unavailable": 503, "not_ready": 503, "shutting_down": 503, "interrupted": 503,
    "storage_unavailable": 503, "storage_full": 507,
    "timeout": 504, "storage_error": 502, "render_failed": 500, "encode_failed": 500, "checkpoint_error": 500,
    "bad_request": 400, "request_timeout": 408, "capability_unavailable": 422, "silent_audio": 422,
    "internal_error": 500,
}
# Statuses of the framework's own HTTP errors (unknown path, wrong method, ...) -> our code.
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large",
              415: "unsupported_media_type", 416: "range_not_satisfiable", 422: "validation_error"}


def status_of(code: str) -> int:
    """The HTTP status an error code answers with (500 for a code not in the registry)."""
    return ERROR_STATUS.get(code, 500)


class ApiError(Exception):
    """An error with a stable `code`; the HTTP status comes from ERROR_STATUS."""

    def __init__(self, code: str, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """{"error": {"code", "message", "request_id", ...}}: the request id is the one of the current request."""
    return {"error": {"code": code, "message": message, "request_id": REQUEST_ID.get() or None, **extra}}
