"""SadTalker inference in plain PyTorch: audio -> 3DMM motion coefficients -> face render -> MP4.

Loads the official checkpoint files unchanged. Knows nothing of HTTP, asyncio or service settings.
Public entry points are imported lazily so that `import sadtalker` stays cheap.
"""

from __future__ import annotations

from .errors import (
    Cancelled,
    CheckpointError,
    EncodeError,
    InvalidAudio,
    InvalidImage,
    InvalidVideo,
    MissingCheckpoints,
    NoFaceDetected,
    SadTalkerError,
)

__all__ = [
    "Cancelled",
    "CheckpointError",
    "EncodeError",
    "InvalidAudio",
    "InvalidImage",
    "InvalidVideo",
    "MissingCheckpoints",
    "NoFaceDetected",
    "SadTalkerError",
]
