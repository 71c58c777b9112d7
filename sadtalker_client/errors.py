"""Errors raised by the client. Every one carries a stable `code`; API errors keep the server's code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from .models import Job


class ClientError(Exception):
    """Base of everything this package raises."""

    code = "client_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ApiError(ClientError):
    """The service answered with an error body `{"error": {"code", "message"}}` (or an unexpected status)."""

    def __init__(self, code: str, message: str, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message, code)
        self.status = status
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.code} (HTTP {self.status}): {self.message}"

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Builds the error from a 4xx/5xx response; tolerates bodies that are not ours (proxies, HTML)."""
        code, message = f"http_{response.status_code}", response.reason_phrase or "error"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = str(body["error"].get("code", code))
            message = str(body["error"].get("message", message))
        elif response.text:
            message = response.text.strip()[:300]
        retry_after = response.headers.get("retry-after")
        try:
            retry_after_s = float(retry_after) if retry_after is not None else None
        except ValueError:
            retry_after_s = None
        return cls(code, message, response.status_code, retry_after_s)


class ConnectionFailed(ClientError):
    """The service could not be reached (refused, DNS, TLS, timeout on connect or read)."""

    code = "connection_failed"


class WaitTimeout(ClientError):
    """`wait()` gave up before the job reached a terminal state; the job keeps running on the server."""

    code = "wait_timeout"


class JobFailed(ClientError):
    """A job ended `failed` or `canceled`; `code` is the job's error code (e.g. `no_face_detected`)."""

    def __init__(self, job: Job) -> None:
        error_code = job.error.code if job.error else job.status
        detail = job.error.message if job.error else f"job {job.status}"
        super().__init__(f"job {job.id} {job.status}: {detail}", error_code)
        self.job = job
