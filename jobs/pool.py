"""The warm worker pool: one renderer per worker, loaded once at start-up, each with its own thread.

A worker's thread is where its renderer is built and every render runs, so the GPU state of one worker is
only ever touched by one thread and the event loop never blocks on a render. The face check before a job is
queued never uses a worker's models: the first loaded renderer builds a separate checker (its own detector,
`FaceCheckSource.face_checker`) on the pool's face-check thread, where every check then runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .render import FaceChecker, FaceCheckSource, Renderer, RendererFactory

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Worker:
    name: str
    device: str
    executor: ThreadPoolExecutor
    state: str = "loading"  # loading | ready | failed | stopped
    renderer: Renderer | None = None
    error: dict[str, str] | None = None
    job_id: str | None = None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "state": self.state, "job_id": self.job_id,
                "error": self.error}


class WorkerPool:
    """Builds one renderer per device entry (`devices` may repeat a device to run several workers on it)."""

    def __init__(self, factory: RendererFactory, devices: list[str]):
        if not devices:
            raise ValueError("the worker pool needs at least one device")
        self._factory = factory
        self.workers = [
            Worker(f"worker-{i}", device, ThreadPoolExecutor(1, thread_name_prefix=f"render-{i}"))
            for i, device in enumerate(devices)
        ]
        self._check_executor = ThreadPoolExecutor(1, thread_name_prefix="face-check")
        self._checker: FaceChecker | None = None
        self._checker_building: asyncio.Task | None = None

    async def start(self) -> None:
        """Loads every worker's renderer concurrently (failures are recorded, not raised), then builds the face
        checker so the first submission does not wait for it."""
        await asyncio.gather(*(self._load(worker) for worker in self.workers))
        await self._face_checker()

    async def _load(self, worker: Worker, previous_error: dict[str, str] | None = None) -> None:
        loop = asyncio.get_running_loop()
        try:
            worker.renderer = await loop.run_in_executor(worker.executor, self._factory, worker.device)
            worker.state, worker.error = "ready", None
            log.info("%s ready on %s", worker.name, worker.device)
        except Exception as e:  # a missing checkpoint or a broken install must not kill the API
            worker.state = "failed"
            worker.error = {"code": getattr(e, "code", None) or "models_unavailable", "message": str(e) or repr(e)}
            if worker.error != previous_error:  # a retry that fails the same way is not news
                log.error("%s failed to load on %s: %s", worker.name, worker.device, worker.error["message"])
        finally:
            worker.loaded.set()

    async def reload(self, worker: Worker) -> None:
        """Builds a failed worker's renderer again (e.g. once missing checkpoints have appeared).

        The worker stays `failed` with its last error until the new load succeeds, so submissions keep being
        refused with the reason meanwhile.
        """
        await self._load(worker, worker.error)

    @property
    def state(self) -> str:
        """ready: every worker loaded; failed: none can run; loading: otherwise."""
        states = {worker.state for worker in self.workers}
        if states == {"ready"}:
            return "ready"
        if "ready" not in states and "loading" not in states:
            return "failed"
        return "loading" if "loading" in states else "degraded"

    def failure(self) -> dict[str, str] | None:
        """The first worker error when no worker can run jobs."""
        if self.state != "failed":
            return None
        return next((w.error for w in self.workers if w.error), {"code": "models_unavailable", "message": "stopped"})

    def describe(self) -> dict[str, Any]:
        return {"state": self.state, "workers": [worker.describe() for worker in self.workers]}

    async def run(self, worker: Worker, fn: Callable[..., T], *args: Any) -> T:
        """Runs `fn(*args)` in the worker's own thread."""
        return await asyncio.get_running_loop().run_in_executor(worker.executor, fn, *args)

    async def check_face(self, image_path: Path) -> dict[str, Any] | None:
        """The face check on the pool's face-check thread; None when no checker can be built yet."""
        checker = await self._face_checker()
        if checker is None:
            return None
        return await asyncio.get_running_loop().run_in_executor(self._check_executor, checker.check_face, image_path)

    async def _face_checker(self) -> FaceChecker | None:
        """Built once, on the face-check thread, from the first ready renderer that can make one."""
        if self._checker is not None:
            return self._checker
        source = next((w.renderer for w in self.workers
                       if w.state == "ready" and isinstance(w.renderer, FaceCheckSource)), None)
        if source is None:
            return None
        if self._checker_building is None or self._checker_building.done() and self._checker is None:
            loop = asyncio.get_running_loop()
            self._checker_building = asyncio.ensure_future(loop.run_in_executor(self._check_executor,
                                                                                source.face_checker))
        try:
            self._checker = await asyncio.shield(self._checker_building)
        except Exception as e:  # the render still checks the face; submissions go on without the early check
            log.warning("the face checker could not be built: %s", e)
            return None
        return self._checker

    def close(self) -> None:
        self._check_executor.shutdown(wait=False, cancel_futures=True)
        for worker in self.workers:
            worker.state = "stopped"
            worker.executor.shutdown(wait=False, cancel_futures=True)
            close = getattr(worker.renderer, "close", None)
            if callable(close) and worker.job_id is None:
                close()
