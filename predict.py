"""Cog predictor (Replicate): `cog predict -i image=@face.jpg -i audio=@speech.wav`, or Cog's HTTP server.

`setup()` loads the model once (the API's production renderer over `sadtalker.pipeline.Pipeline`); `predict()`
takes the job options under the API's names, checks them with the API's own model and the media with the
API's content checks, and returns the MP4. A bad input fails the prediction with "<code>: <message>", the
API's error codes. Settings (checkpoint directory, device, limits) come from the environment via `settings.py`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path as LocalPath

import imageio_ffmpeg
from cog import BasePredictor, Input, Path

from serving.inputs import check_media, check_options, input_limits
from serving.model import ModelRunner, error_of, progress_update
from settings import PROJECT_DIR, Settings

DOWNLOAD_SCRIPT = PROJECT_DIR / "scripts" / "download_checkpoints.sh"


class PredictionError(Exception):
    """A refused input or a failed render; the message starts with the API's error code."""


class Predictor(BasePredictor):
    def setup(self) -> None:
        """Load the model once, fetching the official checkpoint files first when they are missing."""
        self.settings = Settings()
        self.limits = input_limits(self.settings)
        self.ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        self.runner = ModelRunner.from_settings(self.settings)
        self._fetch_missing_checkpoints()
        self.runner.load().result()
        self._last_output: LocalPath | None = None

    def _fetch_missing_checkpoints(self) -> None:
        from api.renderer import missing_checkpoints

        missing = missing_checkpoints(self.settings.sadtalker_checkpoint_dir, self.settings.preload_sizes)
        if missing:
            print(f"checkpoints missing in {self.settings.sadtalker_checkpoint_dir}: {', '.join(missing)}; "
                  "fetching the official files", flush=True)
            # the script writes into $SADTALKER_CHECKPOINT_DIR, the directory the settings read; a failure leaves
            # the files missing and the load below says which
            subprocess.run(["bash", str(DOWNLOAD_SCRIPT)], check=False)

    def predict(
        self,
        image: Path = Input(description="Portrait photo (JPEG, PNG or WebP) showing one face"),
        audio: Path = Input(description="Speech (WAV, MP3, M4A, OGG or FLAC)"),
        preprocess: str = Input(default="crop", choices=["crop", "extcrop", "resize", "full", "extfull"],
                                description="crop: the face only; full/extfull: the face pasted back into the whole photo"),
        still: bool = Input(default=False, description="Less head motion (use with preprocess=full)"),
        enhancer: str = Input(default="none", choices=["none", "gfpgan"], description="Face restoration"),
        size: int = Input(default=256, choices=[256, 512], description="Face render size in pixels"),
        pose_style: int = Input(default=0, ge=0, le=45, description="Head pose style"),
        expression_scale: float = Input(default=1.0, ge=0.0, le=3.0, description="Strength of the expression"),
        batch_size: int = Input(default=None, ge=1, le=32,
                                description="Frames rendered at once (default: 2 on the CPU, from free memory on a GPU)"),
        seed: int = Input(default=None, ge=0, le=2**31 - 1, description="Seed (random when empty)"),
        ref_eyeblink: Path = Input(default=None, description="Optional video whose eye blinks are copied"),
        ref_pose: Path = Input(default=None, description="Optional video whose head pose is copied"),
    ) -> Path:
        """Render the talking-head MP4 (H.264 + AAC, as long as the audio)."""
        options = {"preprocess": preprocess, "still": still, "enhancer": enhancer, "size": size,
                   "pose_style": pose_style, "expression_scale": expression_scale, "batch_size": batch_size,
                   "seed": seed}
        files = {name: LocalPath(path) for name, path in
                 {"image": image, "audio": audio, "ref_eyeblink": ref_eyeblink, "ref_pose": ref_pose}.items()
                 if path is not None}
        self._forget_last_output()
        out_dir = LocalPath(tempfile.mkdtemp(prefix="sadtalker-cog-"))
        self._last_output = out_dir
        try:
            checked = check_options(options)
            _run(check_media(files, self.limits, self.ffmpeg))
            result = self.runner.render(files, checked, out_dir / "output.mp4", progress=_print_progress).result()
        except Exception as e:
            error = error_of(e)
            raise PredictionError(f"{error['code']}: {error['message']}") from e
        print(f"done: {result.frames} frames, {result.width}x{result.height}, seed {result.info.get('seed')}",
              flush=True)
        return Path(result.video_path)

    def _forget_last_output(self) -> None:
        """Cog has read the previous prediction's file by now: remove it, so the disk does not fill up."""
        if self._last_output is not None:
            shutil.rmtree(self._last_output, ignore_errors=True)
            self._last_output = None


def _print_progress(stage: str, done: int, total: int) -> None:
    """Progress goes to the prediction's logs (Cog has no progress field)."""
    percent = progress_update(stage, done, total)["percent"]
    frames = f" {done}/{total} frames" if stage == "render" else ""
    print(f"progress: {stage}{frames}" + (f" ({percent:.0f}%)" if percent is not None else ""), flush=True)


def _run(coroutine):
    """Runs one of the API's async checks from this synchronous method (in a thread of its own if an event loop
    is already running here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
