"""Errors of the job layer; each carries the stable `code` clients see (HTTP mapping lives in api_app)."""

from __future__ import annotations


class JobError(Exception):
    code = "job_error"


class JobNotFound(JobError):
    code = "not_found"


class QueueFull(JobError):
    """The bounded queue is full; `retry_after_s` estimates when a slot frees up."""

    code = "queue_full"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelsUnavailable(JobError):
    code = "models_unavailable"


class ShuttingDown(JobError):
    code = "shutting_down"


class JobNotFinished(JobError):
    code = "job_not_finished"


class IdempotencyConflict(JobError):
    code = "idempotency_conflict"


class RenderTimeout(JobError):
    code = "timeout"


class Interrupted(JobError):
    code = "interrupted"


class JobNotRetryable(JobError):
    code = "job_not_retryable"


class PublishFailed(JobError):
    """The rendered video could not be stored (every upload try failed); the file is kept for retry-upload."""

    code = "storage_error"


class StorageUnavailable(JobError):
    """The output folder or the job database cannot be written (disk full, read-only): 503 + Retry-After."""

    code = "storage_unavailable"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s
