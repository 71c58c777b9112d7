"""A real service instance used as a GPU pod in the dispatcher tests:

    uvicorn --factory dispatch_pod_app:create

It is the service's own `api_app.create_app` (settings from the environment, as run.sh starts it) with the
render step, which needs model weights and a GPU, replaced by ClipRenderer: a real tiny MP4 (test pattern +
the job's audio, 1 s, 64x64) made by ffmpeg after DISPATCH_TEST_RENDER_S seconds of reported progress.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

import imageio_ffmpeg
from fastapi import FastAPI

from api_app import create_app
from jobs.render import RenderRequest, RenderResult

CLIP_S = 1.0
CLIP_SIZE = 64
FPS = 25


class RenderCanceled(RuntimeError):
    code = "canceled"


class ClipRenderer:
    def __init__(self, render_s: float, steps: int = 10):
        self.render_s = render_s
        self.steps = steps

    def render(self, request: RenderRequest, progress: Callable[[str, int, int], None],
               should_cancel: Callable[[], bool]) -> RenderResult:
        frames = int(CLIP_S * FPS)
        for step in range(self.steps):
            if should_cancel():
                raise RenderCanceled("canceled at a batch boundary")
            time.sleep(self.render_s / self.steps)
            progress("render", (step + 1) * frames // self.steps, frames)
        request.output_path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=size={CLIP_SIZE}x{CLIP_SIZE}:rate={FPS}",
            "-i", str(request.audio_path), "-t", str(CLIP_S), "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart",
            str(request.output_path),
        ], check=True, capture_output=True)
        return RenderResult(request.output_path, CLIP_S, frames, CLIP_SIZE, CLIP_SIZE,
                            {"face_detector": "test-clip", "seed": 0})


def create() -> FastAPI:
    render_s = float(os.environ.get("DISPATCH_TEST_RENDER_S", "0.3"))
    return create_app(renderer_factory=lambda device: ClipRenderer(render_s))
