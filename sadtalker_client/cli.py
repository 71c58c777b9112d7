"""Command line of the client: `sadtalker run face.png speech.wav` (installed) or `python -m sadtalker_client`.

The service URL and key come from SADTALKER_API_URL (default http://127.0.0.1:8888) and SADTALKER_API_KEY.
Exit codes: 0 done, 1 the job failed or was canceled, 2 bad usage or unreadable local file, 3 the service
refused the request (its error code is printed), 4 the service cannot be reached, 5 --timeout passed, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from .client import Client
from .errors import ApiError, ConnectionFailed, WaitTimeout
from .models import Job, Preflight
from .progress import ProgressReporter
from .wire import DEFAULT_URL

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_API, EXIT_UNREACHABLE, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
PREPROCESS = ("crop", "extcrop", "resize", "full", "extfull")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(), description=__doc__.split("\n\n")[0],
        epilog="Environment: SADTALKER_API_URL, SADTALKER_API_KEY. " + __doc__.split("\n\n")[1].split("\n", 1)[1])
    parser.add_argument("--url", help=f"service URL (default: $SADTALKER_API_URL or {DEFAULT_URL})")
    parser.add_argument("--json", action="store_true", help="print the service's JSON instead of a summary")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", help="upload an image and an audio file as a new job")
    preflight = commands.add_parser("preflight", help="check the inputs (face, audio) without starting a job")
    run = commands.add_parser("run", help="submit, follow the progress and save the video (submit --wait --out .)")
    for sub in (submit, preflight, run):
        sub.add_argument("image", help="portrait image file, or an http(s) URL the service fetches")
        sub.add_argument("audio", help="speech audio file (wav/mp3/m4a/...), or an http(s) URL")
        _add_options(sub)
    submit.add_argument("--webhook-url", help="URL the service POSTs the job to when it finishes")
    submit.add_argument("--webhook-events", type=lambda text: [e.strip() for e in text.split(",") if e.strip()],
                        help="comma-separated events to send (default: started, succeeded, failed, canceled)")
    submit.add_argument("--metadata", type=json.loads, help="JSON object stored with the job, e.g. '{\"user\": 7}'")
    submit.add_argument("--idempotency-key", help="resubmitting with the same key returns the same job")
    submit.add_argument("--wait", action="store_true", help="follow the progress until the job ends")
    submit.add_argument("--out", help="with --wait: save the video here (file or directory)")
    submit.add_argument("--timeout", type=float, help="with --wait: give up waiting after this many seconds")

    run.add_argument("--out", default=".", help="save the video here: file or directory (default: ./<job id>.mp4)")
    run.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    run.add_argument("--idempotency-key", help="resubmitting with the same key returns the same job")

    commands.add_parser("status", help="show a job").add_argument("job_id")
    wait = commands.add_parser("wait", help="follow a job until it ends")
    wait.add_argument("job_id")
    wait.add_argument("--out", help="save the video here when it succeeds")
    wait.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    download = commands.add_parser("download", help="save a finished job's video")
    download.add_argument("job_id")
    download.add_argument("--out", help="file or directory (default: ./<job id>.mp4)")
    commands.add_parser("cancel", help="cancel a queued or running job").add_argument("job_id")
    listing = commands.add_parser("list", help="this API key's recent jobs, newest first")
    listing.add_argument("--limit", type=int, default=20)
    for sub in commands.choices.values():  # --json also after the command
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _prog() -> str:
    """`sadtalker` when run as the installed command, else the module form."""
    return "sadtalker" if os.path.basename(sys.argv[0]) == "sadtalker" else "python -m sadtalker_client"


def _add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--preprocess", choices=PREPROCESS, help="how the face is cropped (default crop)")
    sub.add_argument("--still", action="store_true", default=None, help="keep the head still (less motion)")
    sub.add_argument("--enhancer", choices=("none", "gfpgan"), help="face enhancement (default none)")
    sub.add_argument("--size", type=int, choices=(256, 512), help="face render size (default 256)")
    sub.add_argument("--pose-style", type=int, metavar="0-45", help="head-motion style (default 0)")
    sub.add_argument("--expression-scale", type=float, metavar="X", help="expression strength 0-3 (default 1)")
    sub.add_argument("--batch-size", type=int, help="frames rendered per batch")
    sub.add_argument("--seed", type=int, help="random seed (head motion, blinks) for repeatable output")
    sub.add_argument("--ref-eyeblink", metavar="VIDEO", help="copy the blinks of this video (file or URL)")
    sub.add_argument("--ref-pose", metavar="VIDEO", help="copy the head motion of this video (file or URL)")


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Positional files or URLs plus the options the user gave (the others take the server's defaults)."""
    inputs: dict[str, Any] = {}
    for name in ("image", "audio", "ref_eyeblink", "ref_pose"):
        value = getattr(args, name)
        if value is not None:
            inputs[f"{name}_url" if value.startswith(("http://", "https://")) else name] = value
    for name in ("preprocess", "still", "enhancer", "size", "pose_style", "expression_scale", "batch_size",
                 "seed", "webhook_url", "webhook_events", "metadata"):
        if getattr(args, name, None) is not None:
            inputs[name] = getattr(args, name)
    return inputs


def main_exit() -> None:
    """The `sadtalker` console command."""
    sys.exit(main())


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         out: TextIO | None = None) -> int:
    """Runs one command; returns the exit code."""
    env = os.environ if env is None else env
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    url = args.url or env.get("SADTALKER_API_URL") or DEFAULT_URL
    try:
        with Client(url, env.get("SADTALKER_API_KEY") or None) as api:
            return _run(api, args, out)
    except ApiError as e:
        print(f"error: {e.code} (HTTP {e.status}): {e.message}", file=sys.stderr)
        if e.code == "unauthorized":
            print("hint: set SADTALKER_API_KEY to one of the service's API_KEYS", file=sys.stderr)
        return EXIT_API
    except ConnectionFailed as e:
        print(f"error: {e.message} (set SADTALKER_API_URL?)", file=sys.stderr)
        return EXIT_UNREACHABLE
    except WaitTimeout as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_TIMEOUT
    except (OSError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted (a submitted job keeps running; `cancel ID` stops it)", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(api: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.command in ("submit", "run"):
        job = api.submit(idempotency_key=args.idempotency_key, **_inputs(args))
        if args.command == "submit" and not args.wait:
            _show_job(job, args.json, out)
            return EXIT_OK
        print(f"submitted {job.id}", file=sys.stderr)
        return _follow(api, job.id, args, out)
    if args.command == "preflight":
        report = api.preflight(**_inputs(args))
        _show_preflight(report, args.json, out)
        return EXIT_OK if report.ok else EXIT_API
    if args.command == "wait":
        return _follow(api, args.job_id, args, out)
    if args.command == "status":
        _show_job(api.get(args.job_id), args.json, out)
    elif args.command == "cancel":
        _show_job(api.cancel(args.job_id), args.json, out)
    elif args.command == "download":
        print(api.download(args.job_id, args.out), file=out)
    elif args.command == "list":
        jobs = api.list(args.limit)
        if args.json:
            print(json.dumps([job.raw for job in jobs], indent=2), file=out)
        for job in [] if args.json else jobs:
            created = job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else "-"
            print(f"{job.id}  {job.status:<9}  {created}  {_progress_text(job)}", file=out)
    return EXIT_OK


def _follow(api: Client, job_id: str, args: argparse.Namespace, out: TextIO) -> int:
    """Waits with a progress bar, shows the outcome, downloads the video when asked."""
    with ProgressReporter(sys.stderr) as reporter:
        job = api.wait(job_id, on_progress=reporter.update, timeout_s=args.timeout)
    _show_job(job, args.json, out)
    if job.status != "succeeded":
        return EXIT_JOB_FAILED
    if args.out:
        print(api.download(job.id, args.out), file=out)
    return EXIT_OK


def _progress_text(job: Job) -> str:
    if job.status == "queued":
        return f"queue position {job.queue_position}" if job.queue_position is not None else ""
    if job.status == "running":
        return f"{job.progress.stage or ''} {job.progress.percent:.0f}%".strip()
    if job.error is not None:
        return f"{job.error.code}: {job.error.message}"
    return ""


def _show_job(job: Job, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps(job.raw, indent=2), file=out)
        return
    print(f"{job.id}  {job.status}  {_progress_text(job)}".rstrip(), file=out)
    if job.result is not None:
        r = job.result
        print(f"  video: {r.video_url}  ({r.duration_s} s, {r.frames} frames, {r.width}x{r.height}, "
              f"{r.bytes} bytes)", file=out)


def _show_preflight(report: Preflight, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps(report.raw, indent=2), file=out)
        return
    print("ok: the job would run" if report.ok else "not ok: the job would fail", file=out)
    if report.face:
        print(f"  face: box {report.face.get('box')} score {report.face.get('score')}", file=out)
    if report.audio:
        print(f"  audio: {report.audio.get('duration_s')} s at {report.audio.get('sample_rate')} Hz", file=out)
    for kind, problems in (("error", report.errors), ("warning", report.warnings)):
        for problem in problems:
            hint = f" (try: {problem.suggestion})" if problem.suggestion else ""
            print(f"  {kind}: {problem.code}: {problem.message}{hint}", file=out)
