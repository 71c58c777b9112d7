"""Every queue name, Redis key prefix, path and time constant of the dispatcher, with its unit.

Defaults of the environment variables live here too, so settings.py, the worker and the tests agree.
"""

from __future__ import annotations

from pathlib import Path

# BullMQ: the queue the Next.js platform enqueues into (its `src/app/api/sadtalker/_lib/queue.ts`).
DEFAULT_QUEUE_NAME = "sadtalker"
BULLMQ_PREFIX = "bull"  # BullMQ's own default key prefix: keys are bull:<queue>:<...>
JOB_NAME = "generate"  # the job name our create API uses; the worker accepts any name

# Retries are BullMQ's: the producer sets them on each job (3 attempts, exponential backoff).
DEFAULT_JOB_ATTEMPTS = 3
DEFAULT_JOB_BACKOFF_MS = 5_000  # first retry after 5 s, then 10 s, 20 s ...
KEEP_COMPLETED_S = 24 * 3600  # finished jobs stay readable through the status API this long
KEEP_FAILED_S = 7 * 24 * 3600

# One attempt of a job: download, upload to a pod, poll until it resolves.
DEFAULT_JOB_TIMEOUT_MS = 8 * 60 * 1000
DEFAULT_WORKER_CONCURRENCY = 1
DEFAULT_LOCK_DURATION_MS = 30_000  # a crashed worker's job goes back to wait after this (stalled check)
DEFAULT_REDIS_RETRY_MS = 1_000  # pause between Redis reconnect attempts of the worker loop
DEFAULT_DRAIN_TIMEOUT_MS = 9 * 60 * 1000  # SIGTERM: wait this long for active jobs, then hand them back

# The create/status API answers 503 queue_unavailable instead of waiting on a Redis that is down.
API_REDIS_TIMEOUT_S = 2.0
API_REDIS_RETRIES = 2

# Inputs: the service's own limits (settings.py of the service uses the same defaults).
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_AUDIO_BYTES = 25 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 60.0

# Pods (the service's /v1/jobs API).
DEFAULT_DISPATCH_OUTPUT_DIR = Path(__file__).resolve().parent.parent / "outputs" / "dispatch"
DEFAULT_REMOTE_CREATE_PATH = "/v1/jobs"
DEFAULT_REMOTE_STATUS_PATH = "/v1/jobs"
LEGACY_CREATE_PATH = "/generate_talking_video"  # the old synchronous app: the answer carries the video
POD_HEALTH_PATH = "/readyz"  # default probe: 200 only when the pod's models are loaded
# Legacy pods have no /readyz: the default probe is a GET of the create path, and any of these answers says
# the app is up and the route exists (a POST-only route answers 405 to a GET).
LEGACY_ALIVE_STATUSES = frozenset({200, 204, 400, 405, 422})
LEGACY_VIDEO_MAX_BYTES = 500 * 1024 * 1024  # an MP4 a legacy pod answers with, stored by the dispatcher
VIDEO_URL_KEYS = ("video_url", "videoUrl", "url", "video", "output_url", "result_url", "download_url")
DEFAULT_POLL_INTERVAL_MS = 2_000
DEFAULT_POD_COOLDOWN_MS = 30_000  # a pod that failed a health check or a request is skipped this long
HEALTH_TTL_S = 10.0  # a passed health check is trusted this long before the pod is checked again
POLL_FAILURES_BEFORE_DOWN = 3  # consecutive failed polls before a pod counts as dead mid-job
POD_CONNECT_TIMEOUT_S = 10.0
POD_UPLOAD_TIMEOUT_S = 120.0  # inputs up to the size caps, over a RunPod proxy
POD_REQUEST_TIMEOUT_S = 15.0

# RunPod discovery: REST API v1, GET /endpoints/{id}?includeWorkers=true (Bearer API key).
DEFAULT_RUNPOD_API_URL = "https://rest.runpod.io/v1"
DEFAULT_RUNPOD_PROXY_URL = "https://{pod_id}-{port}.proxy.runpod.net"
DEFAULT_RUNPOD_POD_PORT = 8888  # run.sh's default API_PORT
DEFAULT_RUNPOD_REFRESH_MS = 60_000
RUNPOD_API_TIMEOUT_S = 10.0

# RunPod serverless endpoints: POST {url}/run {"input": ...}, GET {url}/status/{id}, POST {url}/cancel/{id},
# GET {url}/health; `Authorization: Bearer <endpoint API key>`.
RUNPOD_SERVERLESS_HOST = "api.runpod.ai"
SERVERLESS_SUCCEEDED = "COMPLETED"
SERVERLESS_FAILED_STATES = frozenset({"FAILED", "CANCELLED", "TIMED_OUT"})
SERVERLESS_WAITING_STATES = frozenset({"IN_QUEUE", "IN_PROGRESS"})

# Job states BullMQ reports (getState); the terminal ones end a status poll.
TERMINAL_STATES = frozenset({"completed", "failed"})
# Pod job states (the service's job JSON `status`).
POD_SUCCEEDED = "succeeded"
POD_FAILED_STATES = frozenset({"failed", "canceled"})
# Pod error codes that no other pod or later attempt can fix: the BullMQ job fails at once.
PERMANENT_POD_ERRORS = frozenset({
    "invalid_image", "invalid_audio", "audio_too_long", "no_face_detected", "validation_error",
    "unknown_field", "payload_too_large", "unsupported_media_type", "url_not_allowed", "silent_audio",
})
