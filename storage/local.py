"""Local backend: objects are files under the output directory; the API serves them itself."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .base import Storage, StorageError, StoredObject, check_key, file_size


class LocalStorage(Storage):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the output directory {self.root}: {e}") from e

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, path: Path, key: str, content_type: str = "video/mp4") -> StoredObject:
        dest = self._path(key)
        size = file_size(path)
        if Path(path).resolve() != dest:
            self._copy(Path(path), dest)
        stored = file_size(dest)
        if stored != size:
            raise StorageError(f"stored {dest} has {stored} bytes, expected {size}")
        return StoredObject(key=key, size=stored, url=None)

    @staticmethod
    def _copy(src: Path, dest: Path) -> None:
        """Copy through a temporary file in the same directory so readers never see half a file."""
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            os.close(fd)
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(f"cannot copy {src} to {dest}: {e}") from e

    def url(self, key: str, expires_s: int | None = None) -> str | None:
        check_key(key)
        return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(f"cannot delete {path}: {e}") from e
        self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone): keep it
            directory = directory.parent

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"the output directory {self.root} is not writable")
