"""Where finished videos are kept: a small `Storage` interface and a registry of backends.

`create_storage("s3", {...}, local_root=...)` picks a backend by name, imports it lazily (boto3 and supabase are
optional at run time), and refuses unknown providers and unknown option keys by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import (
    DEFAULT_RETRY_DELAYS_S,
    Storage,
    StorageConfigError,
    StorageError,
    StoredObject,
    check_key,
    put_file_retrying,
    put_file_retrying_async,
)

__all__ = [
    "DEFAULT_RETRY_DELAYS_S",
    "PROVIDERS",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "StoredObject",
    "check_key",
    "create_storage",
    "put_file_retrying",
    "put_file_retrying_async",
]


@dataclass(frozen=True)
class _Backend:
    module: str  # relative to this package
    cls: str
    options: frozenset[str]  # keys accepted in `options`
    required: tuple[str, ...]
    package: str | None  # optional third-party package the backend imports
    install: str | None  # what to pip install when it is missing


_S3_OPTIONS = ("bucket", "region", "endpoint_url", "access_key_id", "secret_access_key", "prefix",
               "public_base_url", "url_expiry_s", "multipart_threshold_bytes")
_SUPABASE_OPTIONS = ("url", "key", "bucket", "public", "prefix", "url_expiry_s")

PROVIDERS: dict[str, _Backend] = {
    "local": _Backend(".local", "LocalStorage", frozenset(), (), None, None),
    "s3": _Backend(".s3", "S3Storage", frozenset(_S3_OPTIONS), ("bucket",), "boto3", "boto3>=1.34"),
    "supabase": _Backend(".supabase", "SupabaseStorage", frozenset(_SUPABASE_OPTIONS), ("url", "key", "bucket"),
                         "supabase", "supabase==2.34.1"),
}

# The environment variables the service reads for each option, named in configuration errors.
ENV_NAMES: dict[str, dict[str, str]] = {
    "s3": {"bucket": "S3_BUCKET", "region": "S3_REGION", "endpoint_url": "S3_ENDPOINT_URL",
           "access_key_id": "S3_ACCESS_KEY_ID", "secret_access_key": "S3_SECRET_ACCESS_KEY",
           "prefix": "S3_PREFIX", "public_base_url": "S3_PUBLIC_BASE_URL"},
    "supabase": {"url": "SUPABASE_URL", "key": "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_KEY",
                 "bucket": "SUPABASE_BUCKET"},
}


def create_storage(provider: str | None, options: Mapping[str, Any], *, local_root: Path) -> Storage:
    """Build the backend named `provider` (None, "" or "local": files under `local_root`).

    Options whose value is None count as unset. Raises StorageConfigError for an unknown provider, an unknown
    or missing option, or a missing optional package (with the pip install hint).
    """
    name = (provider or "local").strip().lower() or "local"
    backend = PROVIDERS.get(name)
    if backend is None:
        raise StorageConfigError(
            f"unknown storage provider {provider!r} (STORAGE_PROVIDER): valid values are "
            f"{', '.join(sorted(PROVIDERS))} (or unset for local files)"
        )
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - backend.options)
    if unknown:
        valid = ", ".join(sorted(backend.options)) or "none"
        raise StorageConfigError(f"unknown {name} storage option(s) {', '.join(unknown)}: valid options are {valid}")
    missing = [k for k in backend.required if given.get(k) in (None, "")]
    if missing:
        env = ENV_NAMES.get(name, {})
        names = ", ".join(f"{k} ({env[k]})" if k in env else k for k in missing)
        raise StorageConfigError(f"{name} storage needs {names}")
    cls = _load_backend(name, backend)
    if name == "local":
        return cls(local_root)
    return cls(**given)


def _load_backend(name: str, backend: _Backend) -> type[Storage]:
    if backend.package is not None:
        try:
            importlib.import_module(backend.package)
        except ImportError as e:
            raise StorageConfigError(
                f"STORAGE_PROVIDER={name} needs the {backend.package!r} package: pip install '{backend.install}'"
            ) from e
    module = importlib.import_module(backend.module, __name__)
    return getattr(module, backend.cls)
