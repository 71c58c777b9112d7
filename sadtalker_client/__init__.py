"""Python client of the SadTalker talking-head service (`/v1/jobs`), with a command line:
`python -m sadtalker_client --help`."""

from .aio import AsyncClient
from .client import Client
from .errors import ApiError, ClientError, ConnectionFailed, JobFailed, WaitTimeout
from .models import Job, JobError, JobEvent, Preflight, Problem, Progress, Result, RunResult
from .wire import DEFAULT_URL, JobInputs, RetryPolicy

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "ConnectionFailed",
    "Job",
    "JobError",
    "JobEvent",
    "JobFailed",
    "JobInputs",
    "Preflight",
    "Problem",
    "Progress",
    "Result",
    "RetryPolicy",
    "RunResult",
    "WaitTimeout",
]
