"""API overhead benchmark: submit and poll throughput and latency against a renderer that returns at once.

Starts the real app under uvicorn in a child process on a loopback port (instant renderer: it copies one
pre-encoded MP4), then submits --jobs jobs from --concurrency clients (multipart upload of a PNG and a 1 s
WAV, each checked by content as in production), polls each to completion, and prints a table.

With --face-check the renderer checks faces with the model package's face analyzer (the dlib fallback here,
RetinaFace where the official files are present) as production does before queueing, the photo is a real
portrait, and --preflight sequential `POST /v1/preflight` calls are timed too (the "answer within a second or
two" promise).

    .venv/bin/python bench/api_load.py --jobs 200 --concurrency 8
    .venv/bin/python bench/api_load.py --jobs 50 --face-check --preflight 20
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEY = "bench-key-0123456789"


class InstantRenderer:
    """Reports every stage and copies a ready MP4: what is left is the service's own cost."""

    def __init__(self, template: Path):
        self.template = template

    def render(self, request, progress, should_cancel):
        from jobs import RenderResult

        for stage in ("preprocess", "audio_to_coeff", "render", "encode"):
            progress(stage, 1, 1)
        shutil.copyfile(self.template, request.output_path)
        return RenderResult(request.output_path, 1.0, 25, 256, 256, {"face_detector": "none"})


class FaceCheckingRenderer(InstantRenderer):
    """The instant renderer plus the production face check (the model package's analyzer)."""

    def __init__(self, template: Path):
        from sadtalker.face import FaceAnalyzer

        super().__init__(template)
        self.analyzer = FaceAnalyzer.load(template.parent / "no-checkpoints", device="cpu")

    def face_checker(self) -> FaceCheckingRenderer:
        return self  # its analyzer serves only the face check (the render copies a file), on the check thread

    def check_face(self, image_path: Path) -> dict:
        import cv2

        rgb = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
        faces = self.analyzer.detect(rgb)
        if not faces:
            from sadtalker import NoFaceDetected

            raise NoFaceDetected("no face was found in the image")
        return {"box": [float(v) for v in faces[0].box], "score": float(faces[0].score),
                "detector": self.analyzer.backend, "faces": len(faces)}


def _template(dest: Path) -> Path:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=gray:size=256x256:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dest)], check=True)
    return dest


def serve(port: int, work: Path, face_check: bool) -> None:
    import uvicorn

    from api_app import create_app
    from settings import Settings

    template = _template(work / "template.mp4")
    settings = Settings(_env_file=None, api_keys=KEY, sadtalker_output_dir=work / "out", sadtalker_device="cpu",
                        sadtalker_max_queue=10_000, sadtalker_retention_hours=0, api_log_level="WARNING")
    renderer = FaceCheckingRenderer if face_check else InstantRenderer
    app = create_app(settings, renderer_factory=lambda device: renderer(template))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _inputs(portrait: bool) -> tuple[bytes, bytes]:
    import numpy as np
    from PIL import Image

    png = io.BytesIO()
    if portrait:
        from skimage import data

        Image.fromarray(data.astronaut()).save(png, "PNG")
    else:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8)).save(png, "PNG")
    wav = io.BytesIO()
    with wave.open(wav, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        tone = (np.sin(np.arange(16000) * 2 * np.pi * 220 / 16000) * 8000).astype("<i2")
        out.writeframes(tone.tobytes())
    return png.getvalue(), wav.getvalue()


async def _client_loop(client, queue: asyncio.Queue, files: dict, stats: dict) -> None:
    while not queue.empty():
        queue.get_nowait()
        t0 = time.perf_counter()
        response = await client.post("/v1/jobs", files=files)
        stats["submit"].append(time.perf_counter() - t0)
        response.raise_for_status()
        job_id = response.json()["id"]
        while True:
            t1 = time.perf_counter()
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            stats["poll"].append(time.perf_counter() - t1)
            if job["status"] in ("succeeded", "failed", "canceled"):
                break
            await asyncio.sleep(0.005)
        stats["end_to_end"].append(time.perf_counter() - t0)
        stats["failed"] += job["status"] != "succeeded"


async def run(url: str, jobs: int, concurrency: int, face_check: bool, preflights: int) -> dict:
    import httpx

    image, audio = _inputs(portrait=face_check)
    files = {"image": ("face.png", image, "image/png"), "audio": ("speech.wav", audio, "audio/wav")}
    stats: dict = {"submit": [], "poll": [], "end_to_end": [], "preflight": [], "failed": 0}
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(_client_loop(client, queue, files, stats) for _ in range(concurrency)))
        stats["wall_s"] = time.perf_counter() - t0
        for _ in range(preflights):
            t1 = time.perf_counter()
            answer = await client.post("/v1/preflight", files=files)
            stats["preflight"].append(time.perf_counter() - t1)
            stats["failed"] += answer.status_code != 200 or not answer.json().get("ok")
    return stats


def _row(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    pct = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return (f"| {name:<12} | {len(ms):>6} | {statistics.mean(ms):>8.1f} | {pct(0.5):>8.1f} | {pct(0.95):>8.1f} "
            f"| {pct(0.99):>8.1f} | {ms[-1]:>8.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--face-check", action="store_true", help="check faces as production does (real portrait)")
    parser.add_argument("--preflight", type=int, default=0, help="sequential preflight calls to time")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.work, args.face_check)
        return
    import httpx

    from tests.support.app import free_port

    port, work = free_port(), Path(tempfile.mkdtemp(prefix="api-load-"))
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--work", str(work)]
                              + (["--face-check"] if args.face_check else []),
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        stats = asyncio.run(run(url, args.jobs, args.concurrency, args.face_check, args.preflight))
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    check = "face check " + ("on (real portrait)" if args.face_check else "off")
    print(f"\n{args.jobs} jobs, {args.concurrency} concurrent clients, instant renderer, {check}, loopback HTTP\n")
    print("| what         |      n | mean ms  |  p50 ms  |  p95 ms  |  p99 ms  |  max ms  |")
    print("|--------------|--------|----------|----------|----------|----------|----------|")
    for name in ("submit", "poll", "end_to_end", "preflight"):
        if stats[name]:
            print(_row(name, stats[name]))
    print(f"\nthroughput: {args.jobs / stats['wall_s']:.1f} jobs/s submitted and finished; failed: {stats['failed']}")


if __name__ == "__main__":
    main()
