"""Runs the real app under uvicorn with the scripted fake renderer (the settings come from the environment).

FAKE_FRAMES and FAKE_BATCH_S script the renderer; SERVE_PORT is the loopback port.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn  # noqa: E402

from api_app import create_app  # noqa: E402
from tests.support.fake_renderer import FakeFactory, Script  # noqa: E402

if __name__ == "__main__":
    script = Script(frames=int(os.environ.get("FAKE_FRAMES", "20")),
                    batch_s=float(os.environ.get("FAKE_BATCH_S", "0")))
    app = create_app(renderer_factory=FakeFactory(script))
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["SERVE_PORT"]), log_level="warning")
