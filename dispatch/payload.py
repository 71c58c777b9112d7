"""The BullMQ job's data: `{ imageUrl, audioUrl, userId, ...options }`, as the Next.js platform enqueues it.

Options may be written camelCase (`poseStyle`) or as the service names them (`pose_style`); other keys
(`userId`, the platform's own bookkeeping) ride along untouched and are not sent to pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

# job data key -> the service's option name
OPTION_NAMES = {
    "preprocess": "preprocess", "still": "still", "enhancer": "enhancer", "size": "size",
    "pose_style": "pose_style", "poseStyle": "pose_style",
    "expression_scale": "expression_scale", "expressionScale": "expression_scale",
    "batch_size": "batch_size", "batchSize": "batch_size", "seed": "seed",
}


class InvalidJobData(ValueError):
    code = "validation_error"


@dataclass(frozen=True)
class JobPayload:
    image_url: str
    audio_url: str
    user_id: str | None = None
    options: dict = field(default_factory=dict)  # service option name -> value


def _url(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidJobData(f"'{key}' is required: the http(s) URL of the input")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidJobData(f"'{key}' must be an http(s) URL, got {value[:100]!r}")
    return value.strip()


def parse_payload(data: object) -> JobPayload:
    """Validate a job's data. Raises InvalidJobData naming the offending key."""
    if not isinstance(data, dict):
        raise InvalidJobData(f"job data must be a JSON object, got {type(data).__name__}")
    options = {}
    for key, name in OPTION_NAMES.items():
        if key in data and data[key] is not None:
            value = data[key]
            if not isinstance(value, (str, int, float, bool)):
                raise InvalidJobData(f"option '{key}' must be a string, number or boolean")
            options[name] = value
    user_id = data.get("userId")
    return JobPayload(_url(data, "imageUrl"), _url(data, "audioUrl"),
                      None if user_id is None else str(user_id), options)
