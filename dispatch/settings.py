"""The dispatcher's own settings: the environment variables of the description's "Platform job queue" table.

The dispatcher is a separate process from the service, so it reads its variables here, once, at start-up.
"""

from __future__ import annotations

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
    remote_health_path: str = Field(
        c.POD_HEALTH_PATH, validation_alias=_env("SADTALKER_REMOTE_HEALTH_PATH", "remote_health_path"))
    token_query: bool = Field(False, validation_alias=_env("SADTALKER_TOKEN_QUERY", "token_query"))
    poll_interval_ms: int = Field(
        c.DEFAULT_POLL_INTERVAL_MS, ge=10, validation_alias=_env("SADTALKER_REMOTE_POLL_MS", "poll_interval_ms"))
    pod_cooldown_ms: int = Field(
        c.DEFAULT_POD_COOLDOWN_MS, ge=0, validation_alias=_env("SADTALKER_POD_COOLDOWN_MS", "pod_cooldown_ms"))

    dispatch_api_keys: str = Field(
        "", repr=False, validation_alias=_env("SADTALKER_DISPATCH_API_KEYS", "dispatch_api_keys"))
    api_keys: str = Field("", repr=False, validation_alias=_env("API_KEYS", "api_keys"))
    api_key: str = Field("", repr=False, validation_alias=_env("API_KEY", "api_key"))
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
    def _health_path(cls, value: str) -> str:
        """Empty: pods are not probed (legacy apps without /readyz); failed requests still skip a pod."""
        value = value.strip()
        return value if not value or value.startswith("/") else "/" + value

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
        API_KEY (comma-separated). Empty: no key needed."""
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
