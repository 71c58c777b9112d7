"""The one error type routes raise; `api_app` turns it (and every domain error with a `code`) into JSON."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with a stable `code`; the HTTP status comes from api_app's table of codes."""

    def __init__(self, code: str, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}
