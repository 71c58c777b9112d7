"""What the loaded workers can run (sizes, enhancers, preprocess modes), and the check that refuses a job
asking for anything else before it is queued (`422 capability_unavailable`).

A renderer declares its capabilities with `capabilities() -> {"sizes", "enhancers", "preprocess"}`; the
service can run what every ready worker can (a job may go to any of them). While no worker is ready nothing
is known yet and no option is refused here (a pool that fails to load refuses every job with
`models_unavailable`).
"""

from __future__ import annotations

from typing import Any

from jobs import RenderOptions, WorkerPool

from .errors import ApiError

KEYS = {"sizes": "size", "enhancers": "enhancer", "preprocess": "preprocess"}  # capability -> job option


def capabilities(pool: WorkerPool) -> dict[str, list[Any]] | None:
    """The options every ready worker can run; None while no worker is ready."""
    declared = []
    for worker in pool.workers:
        describe = getattr(worker.renderer, "capabilities", None)
        if worker.state != "ready":
            continue
        declared.append(describe() if callable(describe) else None)
    if not declared:
        return None
    known = [caps for caps in declared if caps is not None]  # a renderer that declares nothing runs anything
    if not known:
        return None
    return {key: [value for value in known[0][key] if all(value in caps[key] for caps in known)] for key in KEYS}


def check_options(pool: WorkerPool, options: RenderOptions) -> None:
    """ApiError `capability_unavailable` naming what is loaded when an option cannot run here."""
    caps = capabilities(pool)
    if caps is None:
        return
    for key, option in KEYS.items():
        value = getattr(options, option)
        if value not in caps[key]:
            loaded = ", ".join(map(str, caps[key])) or "none"
            raise ApiError("capability_unavailable", f"{option}={value} cannot run on this service "
                           f"(loaded: {key} {loaded}); choose one of those or ask its operator to load it")
