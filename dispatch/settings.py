"""The dispatcher's own settings: the environment variables of the description's "Platform job queue" table.

The dispatcher is a separate process from the service, so it reads its variables here, once, at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispatch import constants as c

# Keys from examples and templates: a server started with one would be open to anyone (as the service).
PLACEHOLDER_KEYS = frozenset({"changeme", "changethis", "change-me", "your-api-key", "secret", "password"})


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _env(*names: str) -> AliasChoices:
    """Accept the environment name(s) and the field name (for tests and embedding)."""
    return AliasChoices(*names)


class DispatchSettings(BaseSettings):
    """Worker and create/status API configuration. Times are in milliseconds, as the variables are."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379", validation_alias=_env("SADTALKER_REDIS_URL", "redis_url"))
    queue_name: str = Field(c.DEFAULT_QUEUE_NAME, validation_alias=_env("SADTALKER_QUEUE_NAME", "queue_name"))
    worker_concurrency: int = Field(
        c.DEFAULT_WORKER_CONCURRENCY, ge=1, le=64,
        validation_alias=_env("SADTALKER_WORKER_CONCURRENCY", "worker_concurrency"))
    job_timeout_ms: int = Field(
        c.DEFAULT_JOB_TIMEOUT_MS, gt=0, validation_alias=_env("SADTALKER_JOB_TIMEOUT_MS", "job_timeout_ms"))
    job_attempts: int = Field(
        c.DEFAULT_JOB_ATTEMPTS, ge=1, validation_alias=_env("SADTALKER_JOB_ATTEMPTS", "job_attempts"))
    job_backoff_ms: int = Field(
        c.DEFAULT_JOB_BACKOFF_MS, ge=0, validation_alias=_env("SADTALKER_JOB_BACKOFF_MS", "job_backoff_ms"))
    lock_duration_ms: int = Field(
        c.DEFAULT_LOCK_DURATION_MS, ge=1000,
        validation_alias=_env("SADTALKER_LOCK_DURATION_MS", "lock_duration_ms"))
    redis_retry_ms: int = Field(
        c.DEFAULT_REDIS_RETRY_MS, ge=10, validation_alias=_env("SADTALKER_REDIS_RETRY_MS", "redis_retry_ms"))
    drain_timeout_ms: int = Field(
        c.DEFAULT_DRAIN_TIMEOUT_MS, ge=0, validation_alias=_env("SADTALKER_DRAIN_TIMEOUT_MS", "drain_timeout_ms"))

    max_image_bytes: int = Field(
        c.DEFAULT_MAX_IMAGE_BYTES, gt=0, validation_alias=_env("SADTALKER_MAX_IMAGE_BYTES", "max_image_bytes"))
    max_audio_bytes: int = Field(
        c.DEFAULT_MAX_AUDIO_BYTES, gt=0, validation_alias=_env("SADTALKER_MAX_AUDIO_BYTES", "max_audio_bytes"))
    allow_private_urls: bool = Field(
        False, validation_alias=_env("SADTALKER_ALLOW_PRIVATE_URLS", "allow_private_urls"))

    runpod_endpoints: str = Field("", validation_alias=_env("SADTALKER_RUNPOD_ENDPOINTS", "runpod_endpoints"))
    runpod_api_key: str = Field(
        "", validation_alias=_env("RUNPOD_API_KEY", "SADTALKER_RUNPOD_API_KEY", "runpod_api_key"))
    runpod_endpoint_ids: str = Field("", validation_alias=_env("RUNPOD_ENDPOINT_IDS", "runpod_endpoint_ids"))
    runpod_refresh_ms: int = Field(
        c.DEFAULT_RUNPOD_REFRESH_MS, ge=100,
        validation_alias=_env("SADTALKER_RUNPOD_REFRESH_MS", "runpod_refresh_ms"))
    runpod_api_url: str = Field(
        c.DEFAULT_RUNPOD_API_URL, validation_alias=_env("SADTALKER_RUNPOD_API_URL", "runpod_api_url"))
    runpod_proxy_url: str = Field(
        c.DEFAULT_RUNPOD_PROXY_URL, validation_alias=_env("SADTALKER_RUNPOD_PROXY_URL", "runpod_proxy_url"))
    runpod_pod_port: int = Field(
        c.DEFAULT_RUNPOD_POD_PORT, ge=1, le=65535,
        validation_alias=_env("SADTALKER_RUNPOD_POD_PORT", "runpod_pod_port"))

    remote_api_key: str = Field("", validation_alias=_env("SADTALKER_REMOTE_API_KEY", "remote_api_key"))
    remote_create_path: str = Field(
        c.DEFAULT_REMOTE_CREATE_PATH, validation_alias=_env("SADTALKER_REMOTE_CREATE_PATH", "remote_create_path"))
    remote_status_path: str = Field(
        c.DEFAULT_REMOTE_STATUS_PATH, validation_alias=_env("SADTALKER_REMOTE_STATUS_PATH", "remote_status_path"))
    remote_health_path: str | None = Field(  # unset: /readyz, or for legacy pods a probe of the create route
        None, validation_alias=_env("SADTALKER_REMOTE_HEALTH_PATH", "remote_health_path"))
    token_query: bool = Field(False, validation_alias=_env("SADTALKER_TOKEN_QUERY", "token_query"))
    runpod_proxy_token: str = Field(  # the token discovered pods get (default: the RunPod API key)
        "", repr=False, validation_alias=_env("SADTALKER_RUNPOD_PROXY_TOKEN", "runpod_proxy_token"))
    poll_interval_ms: int = Field(
        c.DEFAULT_POLL_INTERVAL_MS, ge=10, validation_alias=_env("SADTALKER_REMOTE_POLL_MS", "poll_interval_ms"))
    pod_cooldown_ms: int = Field(
        c.DEFAULT_POD_COOLDOWN_MS, ge=0, validation_alias=_env("SADTALKER_POD_COOLDOWN_MS", "pod_cooldown_ms"))

    dispatch_api_keys: str = Field(
        "", repr=False, validation_alias=_env("SADTALKER_DISPATCH_API_KEYS", "dispatch_api_keys"))
    api_keys: str = Field("", repr=False, validation_alias=_env("API_KEYS", "api_keys"))
    api_key: str = Field("", repr=False, validation_alias=_env("API_KEY", "api_key"))
    dispatch_open: bool = Field(  # true: dispatch.api takes requests without a key when none is configured
        False, validation_alias=_env("SADTALKER_DISPATCH_OPEN", "dispatch_open"))

    # Where the dispatcher stores an MP4 a legacy pod answers with (the service's storage variables).
    storage_provider: str = Field("", validation_alias=_env("STORAGE_PROVIDER", "storage_provider"))
    storage_url_expiry_s: int = Field(
        7 * 24 * 3600, gt=0, validation_alias=_env("STORAGE_URL_EXPIRY_S", "storage_url_expiry_s"))
    s3_bucket: str = Field("", validation_alias=_env("S3_BUCKET", "s3_bucket"))
    s3_region: str = Field("", validation_alias=_env("S3_REGION", "s3_region"))
    s3_endpoint_url: str = Field("", validation_alias=_env("S3_ENDPOINT_URL", "s3_endpoint_url"))
    s3_access_key_id: str = Field("", repr=False, validation_alias=_env("S3_ACCESS_KEY_ID", "s3_access_key_id"))
    s3_secret_access_key: str = Field(
        "", repr=False, validation_alias=_env("S3_SECRET_ACCESS_KEY", "s3_secret_access_key"))
    s3_prefix: str = Field("", validation_alias=_env("S3_PREFIX", "s3_prefix"))
    s3_public_base_url: str = Field("", validation_alias=_env("S3_PUBLIC_BASE_URL", "s3_public_base_url"))
    supabase_url: str = Field("", validation_alias=_env("SUPABASE_URL", "supabase_url"))
    supabase_service_role_key: str = Field(
        "", repr=False, validation_alias=_env("SUPABASE_SERVICE_ROLE_KEY", "supabase_service_role_key"))
    supabase_key: str = Field("", repr=False, validation_alias=_env("SUPABASE_KEY", "supabase_key"))
    supabase_bucket: str = Field("", validation_alias=_env("SUPABASE_BUCKET", "supabase_bucket"))
    supabase_public: bool = Field(False, validation_alias=_env("SUPABASE_PUBLIC", "supabase_public"))
    supabase_prefix: str = Field("", validation_alias=_env("SUPABASE_PREFIX", "supabase_prefix"))
    dispatch_output_dir: Path = Field(  # local storage of the dispatcher (STORAGE_PROVIDER unset)
        c.DEFAULT_DISPATCH_OUTPUT_DIR, validation_alias=_env("SADTALKER_DISPATCH_OUTPUT_DIR", "dispatch_output_dir"))
    dispatch_public_base_url: str = Field(  # base of videoUrl for local files, served by dispatch.api
        "", validation_alias=_env("SADTALKER_DISPATCH_PUBLIC_BASE_URL", "dispatch_public_base_url"))
    log_level: str = Field("INFO", validation_alias=_env("API_LOG_LEVEL", "log_level"))

    @field_validator("remote_create_path", "remote_status_path")
    @classmethod
    def _leading_slash(cls, value: str) -> str:
        value = value.strip() or "/"
        return value if value.startswith("/") else "/" + value

    @model_validator(mode="after")
    def _refuse_placeholder_keys(self) -> DispatchSettings:
        for key in self.api_key_list:
            if key.lower() in PLACEHOLDER_KEYS:
                raise ValueError("the API keys contain a placeholder; generate one with `openssl rand -hex 32`")
        return self

    @field_validator("remote_health_path")
    @classmethod
    def _health_path(cls, value: str | None) -> str | None:
        """Empty: pods are not probed; failed requests still skip a pod. None: the default probe."""
        if value is None:
            return None
        value = value.strip()
        return value if not value or value.startswith("/") else "/" + value

    @field_validator("storage_provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        provider = value.strip().lower()
        if provider not in ("", "local", "s3", "supabase"):
            raise ValueError(f"STORAGE_PROVIDER must be unset, 'local', 's3' or 'supabase', got {value!r}")
        return "" if provider == "local" else provider

    @field_validator("runpod_proxy_url")
    @classmethod
    def _proxy_template(cls, value: str) -> str:
        try:
            url = value.format(pod_id="abc123", port=8888)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"may use only {{pod_id}} and {{port}}: {value!r}") from e
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL template, got {value!r}")
        return value

    @property
    def api_key_list(self) -> list[str]:
        """Keys clients present in X-API-Key: SADTALKER_DISPATCH_API_KEYS, else the service's API_KEYS plus
        API_KEY (comma-separated). Empty: every request is refused, unless SADTALKER_DISPATCH_OPEN=true."""
        if _split(self.dispatch_api_keys):
            return _split(self.dispatch_api_keys)
        return list(dict.fromkeys(_split(self.api_keys) + _split(self.api_key)))

    @property
    def runpod_endpoint_id_list(self) -> list[str]:
        return _split(self.runpod_endpoint_ids)

    @property
    def discovery_enabled(self) -> bool:
        return bool(self.runpod_api_key and self.runpod_endpoint_id_list)

    @property
    def legacy_pods(self) -> bool:
        """The legacy synchronous app answers the create call with the finished video."""
        return self.remote_create_path.rstrip("/") == c.LEGACY_CREATE_PATH

    @property
    def health_path(self) -> str:
        """The pod probe: SADTALKER_REMOTE_HEALTH_PATH when set ("" = off); else /readyz, or for legacy pods
        the create route itself (answered by an app that has only that route)."""
        if self.remote_health_path is not None:
            return self.remote_health_path
        return self.remote_create_path if self.legacy_pods else c.POD_HEALTH_PATH

    @property
    def probe_is_route_check(self) -> bool:
        """The probe asks only whether the legacy create route exists (it has no readiness answer)."""
        return self.health_path == self.remote_create_path and self.legacy_pods

    def storage_options(self) -> dict[str, Any]:
        """Options of `storage.create_storage` for STORAGE_PROVIDER (empty ones left out), as the service."""
        if self.storage_provider == "s3":
            options: dict[str, Any] = {
                "bucket": self.s3_bucket, "region": self.s3_region, "endpoint_url": self.s3_endpoint_url,
                "access_key_id": self.s3_access_key_id, "secret_access_key": self.s3_secret_access_key,
                "prefix": self.s3_prefix, "public_base_url": self.s3_public_base_url,
                "url_expiry_s": self.storage_url_expiry_s}
        elif self.storage_provider == "supabase":
            options = {"url": self.supabase_url, "key": self.supabase_service_role_key or self.supabase_key,
                       "bucket": self.supabase_bucket, "public": self.supabase_public,
                       "prefix": self.supabase_prefix, "url_expiry_s": self.storage_url_expiry_s}
        else:
            return {}
        return {name: value for name, value in options.items() if value not in ("", None)}
