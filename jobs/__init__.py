"""Job orchestration: states and transitions, durable records, the worker pool that runs a given renderer.

Knows nothing of HTTP, storage backends or the model: `api_app` hands it a renderer factory and callables
for publishing results and emitting events.
"""

from .config import ManagerConfig, ManagerHooks, NewJob
from .errors import JobError, JobNotFound, ModelsUnavailable, QueueFull, ShuttingDown, StorageUnavailable
from .manager import JobManager
from .models import STAGES, Failure, Job, JobStatus, Progress
from .pool import WorkerPool
from .render import (
    FaceChecker,
    FaceCheckSource,
    Renderer,
    RendererFactory,
    RenderOptions,
    RenderRequest,
    RenderResult,
)
from .store import JobStore

__all__ = [
    "STAGES",
    "FaceCheckSource",
    "FaceChecker",
    "Failure",
    "Job",
    "JobError",
    "JobManager",
    "JobNotFound",
    "JobStatus",
    "JobStore",
    "ManagerConfig",
    "ManagerHooks",
    "ModelsUnavailable",
    "NewJob",
    "Progress",
    "QueueFull",
    "RenderOptions",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "RendererFactory",
    "ShuttingDown",
    "StorageUnavailable",
    "WorkerPool",
]
