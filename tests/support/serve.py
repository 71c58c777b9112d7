"""Runs the real app under uvicorn with the scripted fake renderer (the settings come from the environment).

FAKE_FRAMES and FAKE_BATCH_S script the renderer, FAKE_SIZES / FAKE_ENHANCERS (comma-separated) what it
declares loaded; SERVE_PORT is the loopback port. `python -m uvicorn --factory tests.support.serve:app_factory`
starts it the way run.sh starts the service (uvicorn configures its logging first, then calls the factory).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn  # noqa: E402

from api_app import create_app  # noqa: E402
from tests.support.fake_renderer import FakeFactory, Script  # noqa: E402


def _script() -> Script:
    script = Script(frames=int(os.environ.get("FAKE_FRAMES", "20")),
                    batch_s=float(os.environ.get("FAKE_BATCH_S", "0")))
    if os.environ.get("FAKE_SIZES"):
        script.sizes = tuple(int(size) for size in os.environ["FAKE_SIZES"].split(","))
    if os.environ.get("FAKE_ENHANCERS"):
        script.enhancers = tuple(os.environ["FAKE_ENHANCERS"].split(","))
    return script


def app_factory():
    return create_app(renderer_factory=FakeFactory(_script()))


if __name__ == "__main__":
    uvicorn.run(app_factory(), host="127.0.0.1", port=int(os.environ["SERVE_PORT"]), log_level="warning")
