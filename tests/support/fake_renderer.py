"""A scripted renderer for service tests: the jobs Renderer protocol without the model.

It reports the real stages, renders in batches honouring cancel at each batch boundary, can be held at a
batch boundary, fails with a given code on request, checks faces with dlib on the real photo (through its own
face checker, as the production renderer), and writes a real H.264 + AAC MP4 (ffmpeg) so downloads are real
videos. Every renderer and checker records the threads that used it (`FakeFactory.threads`), so tests can
prove that no model object is ever touched by two threads.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np

from jobs import RenderRequest, RenderResult

FPS = 25
MIN_FACE_SCORE = 0.5


class FakeRenderError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Script:
    frames: int = 20
    batch_s: float = 0.0  # sleep per batch
    fail_code: str | None = None  # raise an error with this code in the render stage
    ignore_cancel: bool = False
    load_s: float = 0.0
    load_error: str | None = None  # the factory raises (code models_unavailable) with this message
    check_faces: bool = True
    sizes: tuple[int, ...] = (256, 512)  # what capabilities() declares loaded
    enhancers: tuple[str, ...] = ("none", "gfpgan")


@dataclass
class FakeFactory:
    """Device name -> FakeRenderer; tests steer every renderer it made through `script` and `hold`."""

    script: Script = field(default_factory=Script)
    hold: threading.Event = field(default_factory=threading.Event)  # set: batches run; clear: wait at a boundary
    devices: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # job ids, in start order
    canceled: list[str] = field(default_factory=list)
    requests: list[RenderRequest] = field(default_factory=list)  # every render request, in order
    threads: dict[int, set[int]] = field(default_factory=dict)  # id(renderer or checker) -> thread idents
    _template: Path | None = None

    def __post_init__(self) -> None:
        self.hold.set()

    def __call__(self, device: str) -> FakeRenderer:
        if self.script.load_s:
            time.sleep(self.script.load_s)
        if self.script.load_error:
            raise FakeRenderError("models_unavailable", self.script.load_error)
        self.devices.append(device)
        return FakeRenderer(self)

    def wait_started(self, job_id: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while job_id not in self.started:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job_id} did not start")
            time.sleep(0.01)


def write_video(audio: Path, out: Path, size: int, frames: int) -> None:
    """A real MP4: `frames` frames of a grey square at 25 fps with the audio, cut to the video length."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([
        ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=gray:size={size}x{size}:rate={FPS}",
        "-i", str(audio), "-frames:v", str(frames), "-t", f"{frames / FPS:.3f}", "-c:v", "libx264",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart", str(out),
    ], check=True, capture_output=True)


def _used_by_this_thread(factory: FakeFactory, model: object) -> None:
    factory.threads.setdefault(id(model), set()).add(threading.get_ident())


class FakeFaceChecker:
    def __init__(self, factory: FakeFactory):
        self.factory = factory

    @property
    def script(self) -> Script:
        return self.factory.script

    def check_face(self, image_path: Path) -> dict[str, Any]:
        _used_by_this_thread(self.factory, self)
        if not self.script.check_faces:
            return {"detector": "none"}
        import cv2
        import dlib

        bgr = cv2.imread(str(image_path))
        if bgr is None:
            raise FakeRenderError("invalid_image", "image could not be read")
        rgb, detector = np.ascontiguousarray(bgr[:, :, ::-1]), dlib.get_frontal_face_detector()

        def found(upsample: int) -> list:  # as the model's dlib fallback: a score floor, upsampled only if needed
            rects, scores, _ = detector.run(rgb, upsample, 0.0)
            return [rect for rect, score in zip(rects, scores, strict=True) if score >= MIN_FACE_SCORE]

        rects = found(0) or found(1)
        if len(rects) == 0:
            raise FakeRenderError("no_face_detected", "no face was found in the image")
        r = max(rects, key=lambda rect: rect.area())
        return {"box": [r.left(), r.top(), r.right(), r.bottom()], "detector": "dlib", "faces": len(rects)}


class FakeRenderer:
    def __init__(self, factory: FakeFactory):
        self.factory = factory
        self.script = factory.script

    def capabilities(self) -> dict[str, list[Any]]:
        return {"sizes": list(self.factory.script.sizes), "enhancers": list(self.factory.script.enhancers),
                "preprocess": ["crop", "extcrop", "resize", "full", "extfull"]}

    def face_checker(self) -> FakeFaceChecker:
        return FakeFaceChecker(self.factory)

    def _boundary(self, should_cancel) -> None:
        while not self.factory.hold.wait(0.01):
            if should_cancel() and not self.script.ignore_cancel:
                break
        if should_cancel() and not self.script.ignore_cancel:
            raise FakeRenderError("canceled", "generation canceled")

    def render(self, request: RenderRequest, progress, should_cancel) -> RenderResult:
        _used_by_this_thread(self.factory, self)
        self.factory.requests.append(request)
        self.factory.started.append(request.job_id)
        try:
            return self._render(request, progress, should_cancel)
        except FakeRenderError as e:
            if e.code == "canceled":
                self.factory.canceled.append(request.job_id)
            raise

    def _render(self, request: RenderRequest, progress, should_cancel) -> RenderResult:
        script, total = self.script, self.script.frames
        for stage in ("preprocess", "audio_to_coeff"):
            progress(stage, 0, 1)
            self._boundary(should_cancel)
            progress(stage, 1, 1)
        batch = request.options.batch_size or 2
        for done in range(0, total, batch):
            self._boundary(should_cancel)
            if script.fail_code:
                raise FakeRenderError(script.fail_code, f"scripted failure {script.fail_code}")
            if script.batch_s:
                time.sleep(script.batch_s)
            progress("render", min(done + batch, total), total)
        progress("encode", 0, 1)
        size = request.options.size
        self._write(request.audio_path, request.output_path, size, total)
        progress("encode", 1, 1)
        return RenderResult(request.output_path, total / FPS, total, size, size,
                            {"face_detector": "dlib", "seed": request.options.seed or 0})

    def _write(self, audio: Path, out: Path, size: int, frames: int) -> None:
        # One real encode per renderer; later jobs copy it (the API's cost is what the tests measure).
        template = out.parent.parent / f".template-{size}-{frames}.mp4"
        if not template.exists():
            write_video(audio, template, size, frames)
        shutil.copyfile(template, out)
