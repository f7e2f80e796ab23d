"""Where file bytes live: one small interface, content-addressed, so the same bytes are stored once
and a name can never point at other content. The database holds what the bytes are and who sees
them (models/files/attachments.py); a store only keeps bytes under their SHA-256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store the bytes; their SHA-256 (hex) is their key. Storing them again is a no-op."""

    def get(self, key: str) -> bytes:
        """The bytes under `key`; KeyError when there are none."""

    def delete(self, key: str) -> None:
        """Forget `key` (nothing happens when it is not there)."""

    def all_keys(self, written_before: datetime | None = None) -> set[str]:
        """Every key held (whose bytes were last put before `written_before`, when given): for
        collecting what no attachment refers to any more."""


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore:
    """Files under a folder (by default the data folder's `files/`), two levels of fan-out. A put
    writes a temporary file and renames it into place: a request that dies halfway leaves no
    half-written file under a key."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise KeyError(key)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = key_of(data)
        path = self._path(key)
        if path.exists():
            os.utime(path)  # put again: young again, so a collection never takes it from a new upload
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def all_keys(self, written_before: datetime | None = None) -> set[str]:
        cutoff = written_before.timestamp() if written_before else None
        return {p.name for p in self.root.glob("*/*/*") if p.is_file() and not p.name.startswith(".")
                and (cutoff is None or p.stat().st_mtime < cutoff)}


def store_for(data_dir: Path, url: str = "") -> BlobStore:
    """The store a setting names: an `s3://bucket/prefix?endpoint=...` URL, or (empty) the data
    folder's `files/`."""
    if url.startswith("s3://"):
        return _s3(url)
    return LocalStore(data_dir / "files")


@lru_cache(maxsize=4)
def _s3(url: str) -> BlobStore:
    from appealflow.models.files.s3 import s3_store_from_url  # boto3 loads only where S3 is used

    return s3_store_from_url(url)
