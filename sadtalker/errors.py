"""Errors raised by the model package. Each carries a stable machine-readable `code`."""

from __future__ import annotations


class SadTalkerError(Exception):
    """Base class; `code` is stable and safe to show to API clients."""

    code = "sadtalker_error"


class CheckpointError(SadTalkerError):
    """A checkpoint file is missing, truncated, foreign, or does not match the network."""

    code = "checkpoint_error"


class MissingCheckpoints(CheckpointError):
    """Required checkpoint files are absent from the checkpoint directory."""

    code = "models_unavailable"

    def __init__(self, checkpoint_dir: str, missing: list[str]):
        self.checkpoint_dir = checkpoint_dir
        self.missing = list(missing)
        super().__init__(
            f"missing in {checkpoint_dir}: {', '.join(self.missing)} "
            "(run scripts/download_checkpoints.sh or set SADTALKER_CHECKPOINT_DIR)"
        )


class InvalidImage(SadTalkerError):
    code = "invalid_image"


class InvalidVideo(InvalidImage):
    """A reference video that cannot be decoded or holds no frames."""

    code = "invalid_video"


class InvalidAudio(SadTalkerError):
    code = "invalid_audio"


class NoFaceDetected(SadTalkerError):
    code = "no_face_detected"


class Cancelled(SadTalkerError):
    """Raised at a batch boundary when the caller's cancel check returns True."""

    code = "canceled"


class EncodeError(SadTalkerError):
    code = "encode_failed"
