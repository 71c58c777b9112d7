"""Job orchestration: states and transitions, durable records, the worker pool that runs a given renderer.

Knows nothing of HTTP, storage backends or the model: `api_app` hands it a renderer factory and callables
for publishing results and emitting events.
"""

from .errors import JobError, JobNotFound, ModelsUnavailable, QueueFull, ShuttingDown
from .manager import JobManager, ManagerConfig, NewJob
from .models import STAGES, Job, JobStatus
from .pool import WorkerPool
from .render import Renderer, RendererFactory, RenderRequest, RenderResult
from .store import JobStore

__all__ = [
    "STAGES",
    "Job",
    "JobError",
    "JobManager",
    "JobNotFound",
    "JobStatus",
    "JobStore",
    "ManagerConfig",
    "ModelsUnavailable",
    "NewJob",
    "QueueFull",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "RendererFactory",
    "ShuttingDown",
    "WorkerPool",
]
