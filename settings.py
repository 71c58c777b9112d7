"""Service settings: every environment variable the service reads, validated once at start-up.

Field names are the environment variable names in lower case (`API_KEYS` -> `api_keys`), so the names of the
original service description stay as they are. Nothing else in the project reads `os.environ`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

import model_paths

PROJECT_DIR = Path(__file__).resolve().parent
MIB = 1024 * 1024
# Keys that appear in examples and templates; a server started with one of them would be open to anyone.
PLACEHOLDER_KEYS = frozenset({"changeme", "changethis", "change-me", "your-api-key", "secret", "password"})
STORAGE_PROVIDERS = ("", "local", "s3", "supabase")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    """One object read once and passed down (`create_app(settings)`)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=None)

    # --- HTTP and auth
    api_keys: str = Field("", repr=False, description="comma-separated keys clients send as X-API-Key")
    api_key: str = Field("", repr=False, description="a single key (merged with API_KEYS)")
    api_public_base_url: str | None = None
    api_log_level: str = "INFO"
    api_port: int = Field(8888, ge=1, le=65535)

    # --- paths
    # unset: checkpoints/ of the project, else ../checkpoints beside it (a SadTalker install); see model_paths
    sadtalker_checkpoint_dir: Path = Field(default_factory=lambda: model_paths.default_checkpoint_dir(PROJECT_DIR))
    sadtalker_face_weights_dir: Path | None = None  # searched first for the face/GFPGAN files
    sadtalker_output_dir: Path = PROJECT_DIR / "outputs" / "api"
    sadtalker_db_path: Path | None = None  # default: <output dir>/jobs.sqlite3

    # --- input limits
    sadtalker_max_image_bytes: int = Field(10 * MIB, gt=0)
    sadtalker_max_audio_bytes: int = Field(25 * MIB, gt=0)
    sadtalker_max_video_bytes: int = Field(50 * MIB, gt=0)  # ref_eyeblink / ref_pose videos
    sadtalker_max_audio_seconds: float = Field(300.0, gt=0)
    sadtalker_max_image_pixels: int = Field(40_000_000, gt=0)  # width * height; decompression-bomb guard
    sadtalker_allow_private_urls: bool = False
    sadtalker_fetch_timeout_s: float = Field(30.0, gt=0)
    sadtalker_body_idle_timeout_s: float = Field(30.0, gt=0)  # longest wait for the next chunk of a body: 408
    sadtalker_body_timeout_s: float = Field(600.0, gt=0)  # longest time to receive a whole body: 408

    # --- job manager and workers
    sadtalker_max_queue: int = Field(100, ge=1)
    sadtalker_workers: int = Field(0, ge=0)  # 0: one per visible GPU (one on CPU)
    sadtalker_device: str = "auto"  # auto | cpu | cuda | cuda:0,cuda:1
    cuda_visible_devices: str | None = None  # read only to tell whether a GPU is meant to be visible
    sadtalker_job_timeout_s: float = Field(480.0, gt=0)
    sadtalker_shutdown_grace_s: float = Field(30.0, ge=0)
    sadtalker_model_reload_s: float = Field(30.0, ge=0)  # look again for missing checkpoints; 0: only at start
    sadtalker_retention_hours: float = Field(168.0, ge=0)  # 0 keeps jobs forever
    sadtalker_idempotency_ttl_s: float = Field(24 * 3600.0, gt=0)
    sadtalker_half: bool = False
    sadtalker_preload_sizes: str = "256"
    sadtalker_enhancer: bool = True  # load GFPGAN at start-up when its files are present
    sadtalker_keep_inputs: bool = False  # keep a job's input files after it ends (until it is deleted/expires)
    sadtalker_min_free_mb: float = Field(64.0, ge=0)  # less free space: submissions refused (storage_unavailable)
    sadtalker_save_retry_s: float = Field(5.0, gt=0)  # a job record whose save failed (disk full) is retried

    # --- GPU speed (docs/performance.md)
    sadtalker_precision: Literal["fp32", "tf32", "bf16", "fp16"] = "fp32"  # SADTALKER_HALF=true means fp16
    sadtalker_compile: bool = False  # torch.compile the SPADE decoder and the dense-motion hourglass
    sadtalker_split_devices: bool = False  # one worker spans every device; long clips are split across them
    sadtalker_min_segment_s: float = Field(5.0, gt=0)  # shortest segment of a split clip

    # --- webhooks
    webhook_secret: str = Field("", repr=False)
    webhook_secrets: str = Field("", repr=False)
    sadtalker_webhook_url: str | None = None  # default webhook_url for jobs that give none
    sadtalker_webhook_schedule_s: str = ""  # comma-separated retry delays; empty: webhooks.DEFAULT_SCHEDULE_S
    sadtalker_webhook_timeout_s: float = Field(10.0, gt=0)

    # --- storage
    storage_provider: str = ""
    storage_url_expiry_s: int = Field(7 * 24 * 3600, gt=0)
    sadtalker_upload_retry_delays_s: str = "1,4,15"  # waits between upload tries; empty: one try
    # signed links to local videos and posters (no X-API-Key needed); empty: made once under the output dir
    sadtalker_link_secret: str = Field("", repr=False)
    sadtalker_link_ttl_s: int = Field(24 * 3600, gt=0)
    s3_multipart_threshold_bytes: int | None = Field(None, gt=0)
    s3_bucket: str = ""
    s3_region: str = ""
    s3_endpoint_url: str = ""
    s3_access_key_id: str = Field("", repr=False)
    s3_secret_access_key: str = Field("", repr=False)
    s3_prefix: str = ""
    s3_public_base_url: str = ""
    supabase_url: str = ""
    supabase_service_role_key: str = Field("", repr=False)
    supabase_key: str = Field("", repr=False)
    supabase_bucket: str = ""
    supabase_public: bool = False
    supabase_prefix: str = ""

    # --- serverless workers (handler.py): a video is returned inline (base64) up to this size when no
    # STORAGE_PROVIDER uploads it; 0: never inline
    sadtalker_inline_video_max_bytes: int = Field(10 * MIB, ge=0)

    @field_validator("api_log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"API_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    @field_validator("storage_provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        provider = value.strip().lower()
        if provider not in STORAGE_PROVIDERS:
            raise ValueError(f"STORAGE_PROVIDER must be unset, 'local', 's3' or 'supabase', got {value!r}")
        return provider

    @field_validator("sadtalker_link_secret")
    @classmethod
    def _link_secret(cls, value: str) -> str:
        if value and len(value) < 16:
            raise ValueError("SADTALKER_LINK_SECRET must be at least 16 characters (or unset: one is generated)")
        return value

    @field_validator("sadtalker_device")
    @classmethod
    def _device(cls, value: str) -> str:
        for device in _split(value) or ["auto"]:
            if device not in ("auto", "cpu", "cuda", "mps") and not device.startswith("cuda:"):
                raise ValueError(f"SADTALKER_DEVICE entries must be auto, cpu, cuda or cuda:N, got {device!r}")
        return value.strip() or "auto"

    @field_validator("api_public_base_url", "sadtalker_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("sadtalker_preload_sizes")
    @classmethod
    def _sizes(cls, value: str) -> str:
        for size in _split(value):
            if size not in ("256", "512"):
                raise ValueError(f"SADTALKER_PRELOAD_SIZES entries must be 256 or 512, got {size!r}")
        return value

    @field_validator("sadtalker_webhook_schedule_s", "sadtalker_upload_retry_delays_s")
    @classmethod
    def _delays(cls, value: str) -> str:
        for part in _split(value):
            try:
                ok = float(part) >= 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"must be comma-separated seconds (e.g. 1,4,15), got {part!r}")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        for key in self.keys:
            if key.lower() in PLACEHOLDER_KEYS:
                raise ValueError("API_KEYS contains a placeholder key; generate one with `openssl rand -hex 32`")
        for secret in self.webhook_secret_list:
            if not secret.startswith("whsec_"):
                raise ValueError("WEBHOOK_SECRET(S) entries must look like whsec_<base64>")
        return self

    # --- derived values
    @property
    def keys(self) -> list[str]:
        """Every accepted API key (API_KEYS plus API_KEY), without duplicates."""
        return list(dict.fromkeys(_split(self.api_keys) + _split(self.api_key)))

    @property
    def face_weight_dirs(self) -> list[Path]:
        """Folders searched for the face and GFPGAN files, in order (model_paths.face_weight_dirs)."""
        return model_paths.face_weight_dirs(self.sadtalker_checkpoint_dir, self.sadtalker_face_weights_dir)

    @property
    def checkpoint_dir_source(self) -> str:
        """How the checkpoint directory was chosen (for /readyz and the start-up log)."""
        if "sadtalker_checkpoint_dir" in self.model_fields_set:
            return "SADTALKER_CHECKPOINT_DIR"
        if self.sadtalker_checkpoint_dir == PROJECT_DIR / "checkpoints":
            return "checkpoints/ of the project"
        return "../checkpoints beside the project (an existing SadTalker install)"

    @property
    def db_path(self) -> Path:
        return self.sadtalker_db_path or self.sadtalker_output_dir / "jobs.sqlite3"

    @property
    def precision(self) -> str:
        return "fp16" if self.sadtalker_half else self.sadtalker_precision

    @property
    def preload_sizes(self) -> tuple[int, ...]:
        return tuple(int(size) for size in _split(self.sadtalker_preload_sizes)) or (256,)

    @property
    def webhook_schedule(self) -> tuple[float, ...] | None:
        """SADTALKER_WEBHOOK_SCHEDULE_S as seconds; None: the webhook sender's default schedule."""
        return tuple(float(part) for part in _split(self.sadtalker_webhook_schedule_s)) or None

    @property
    def upload_retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in _split(self.sadtalker_upload_retry_delays_s))

    @property
    def webhook_secret_list(self) -> list[str]:
        return list(dict.fromkeys(_split(self.webhook_secrets) + _split(self.webhook_secret)))

    def storage_options(self) -> dict[str, Any]:
        """The options `storage.create_storage` takes for the configured provider (empty ones left out)."""
        if self.storage_provider == "s3":
            options: dict[str, Any] = {
                "bucket": self.s3_bucket, "region": self.s3_region, "endpoint_url": self.s3_endpoint_url,
                "access_key_id": self.s3_access_key_id, "secret_access_key": self.s3_secret_access_key,
                "prefix": self.s3_prefix, "public_base_url": self.s3_public_base_url,
                "url_expiry_s": self.storage_url_expiry_s, "multipart_threshold_bytes": self.s3_multipart_threshold_bytes,
            }
        elif self.storage_provider == "supabase":
            options = {
                "url": self.supabase_url, "key": self.supabase_service_role_key or self.supabase_key,
                "bucket": self.supabase_bucket, "public": self.supabase_public, "prefix": self.supabase_prefix,
                "url_expiry_s": self.storage_url_expiry_s,
            }
        else:
            return {}
        return {name: value for name, value in options.items() if value not in ("", None)}

    def log_summary(self, logger: logging.Logger) -> None:
        """Logs the effective configuration without secrets."""
        logger.info(
            "settings: keys=%d output_dir=%s db=%s checkpoints=%s storage=%s device=%s workers=%s max_queue=%d",
            len(self.keys), self.sadtalker_output_dir, self.db_path, self.sadtalker_checkpoint_dir,
            self.storage_provider or "local", self.sadtalker_device, self.sadtalker_workers or "auto",
            self.sadtalker_max_queue,
        )
