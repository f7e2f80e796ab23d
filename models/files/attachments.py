"""An appeal's files: what they are, who added them, who sees them, and the checks every file
passes before it is kept.

A file's type is decided by its content, never by its name or the header it came with. Photos are
kept only as re-encoded copies (models/files/images.py, in a worker): the upload itself, with its
EXIF (the citizen's GPS position, the camera's serial), is held until then and never served. PDFs
are kept as they are and only ever downloaded, never shown inline from our origin.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel, col, func, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.files.store import BlobStore
from appealflow.models.refusal import Kind, Refused
from appealflow.models.storage.columns import UTCDateTime, stored_id


class FileKind(StrEnum):
    photo = "photo"
    document = "document"


class Visibility(StrEnum):
    public = "public"  # the requester sees it (their own, and a reply's evidence)
    staff = "staff"  # departments and the centre only (a note's or a contact record's files)


class FileState(StrEnum):
    processing = "processing"  # a photo waiting for its re-encoded copies
    ready = "ready"
    refused = "refused"  # a photo that would not decode (or was a bomb): nothing of it is kept


class Attachment(SQLModel, table=True):
    __tablename__ = "attachment"

    id: int | None = Field(default=None, primary_key=True)
    appeal_id: int = Field(foreign_key="appeal.id", index=True)
    added_by: str = Field(max_length=100)  # "requester", "staff:<username>", "open311:<client>"
    added_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    kind: str = Field(max_length=10)
    content_type: str = Field(max_length=40)  # of what is served: image/jpeg for a photo once ready
    name: str = Field(max_length=120)  # the file's name as the person knows it, made harmless
    size: int  # bytes of the upload
    visibility: str = Field(max_length=10, default=Visibility.public)
    state: str = Field(max_length=12, index=True, default=FileState.ready)
    upload_key: str | None = Field(default=None, max_length=64)  # a photo's raw upload, until processed
    file_key: str | None = Field(default=None, max_length=64)  # a PDF, or a photo's screen-size copy
    thumb_key: str | None = Field(default=None, max_length=64)
    width: int | None = None
    height: int | None = None
    purpose: str = Field(max_length=20, default="filing")  # filing, addition, reply, contact, note


class FileRefused(Refused):
    def __init__(self, message: str, kind: Kind = Kind.invalid, field: str = "files"):
        super().__init__(message, field=field)
        self.kind = kind


ACCEPTED = "JPEG, PNG, WebP, PDF"


def sniff(data: bytes) -> tuple[FileKind, str] | None:
    """What the bytes are, by their signature: (kind, type) or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return FileKind.photo, "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind.photo, "image/png"
    if len(data) > 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return FileKind.photo, "image/webp"
    if data.startswith(b"%PDF-"):
        return FileKind.document, "application/pdf"
    return None


_UNSAFE_NAME = re.compile(r"[^\w.\- ()\u4e00-\u9fff]+")


def safe_name(name: str | None, content_type: str) -> str:
    """A display name with no path, control or quoting characters, and the extension of what it is."""
    stem = _UNSAFE_NAME.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" ._")[:80] or "file"
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return f"{stem}.{ {'image/jpeg': 'jpg', 'image/png': 'png', 'image/webp': 'webp'}.get(content_type, 'pdf') }"


def count_of(session: Session, appeal: Appeal) -> int:
    return session.execute(select(func.count()).select_from(Attachment)
                           .where(col(Attachment.appeal_id) == appeal.id)).scalar_one()


def add_files(session: Session, store: BlobStore, appeal: Appeal, uploads: list[tuple[str | None, bytes]], *,
              added_by: str, now: datetime, visibility: Visibility = Visibility.public, purpose: str = "filing",
              max_file_bytes: int, max_per_appeal: int) -> list[Attachment]:
    """Check every upload, then keep them all (or none): bytes in the store, a row each, and one
    event in the appeal's history. Photos wait for a worker to make their copies."""
    if not uploads:
        return []
    if count_of(session, appeal) + len(uploads) > max_per_appeal:
        raise FileRefused(f"一件诉求最多 {max_per_appeal} 个文件 / at most {max_per_appeal} files per appeal",
                          Kind.too_large)
    checked = []
    for name, data in uploads:
        if len(data) > max_file_bytes:
            raise FileRefused(f"文件 {safe_name(name, '')} 超过 {max_file_bytes // (1024 * 1024)} MB / "
                              f"a file is over {max_file_bytes} bytes", Kind.too_large)
        found = sniff(data)
        if found is None:
            raise FileRefused(f"只接受 {ACCEPTED} / only {ACCEPTED} files are taken", Kind.unsupported)
        checked.append((name, data, *found))
    rows = []
    for name, data, kind, content_type in checked:
        key = store.put(data)
        photo = kind == FileKind.photo
        rows.append(Attachment(appeal_id=stored_id(appeal), added_by=added_by, added_at=now, kind=kind,
                               content_type="image/jpeg" if photo else content_type,
                               name=safe_name(name, "image/jpeg" if photo else content_type), size=len(data),
                               visibility=visibility, purpose=purpose,
                               state=FileState.processing if photo else FileState.ready,
                               upload_key=key if photo else None, file_key=None if photo else key))
    session.add_all(rows)
    photos = sum(r.kind == FileKind.photo for r in rows)
    session.add(AppealEvent(appeal_id=stored_id(appeal), kind="files_added", actor=added_by, at=now,
                            detail={"photos": photos, "documents": len(rows) - photos, "visibility": visibility,
                                    "purpose": purpose}))
    session.flush()
    return rows


def files_of(session: Session, appeal: Appeal, *, staff: bool) -> list[Attachment]:
    """The files a reader of the appeal sees: staff every one, the requester the public ones."""
    query = select(Attachment).where(col(Attachment.appeal_id) == appeal.id, col(Attachment.state) != FileState.refused)
    if not staff:
        query = query.where(col(Attachment.visibility) == Visibility.public)
    return list(session.exec(query.order_by(col(Attachment.id))))


def one_file(session: Session, appeal: Appeal, file_id: int, *, staff: bool) -> Attachment | None:
    return next((f for f in files_of(session, appeal, staff=staff) if f.id == file_id), None)


def waiting_photos(session: Session, limit: int = 20) -> list[Attachment]:
    return list(session.exec(select(Attachment).where(col(Attachment.state) == FileState.processing)
                             .order_by(col(Attachment.id)).limit(limit)))


def collect_unreferenced(session: Session, store: BlobStore) -> int:
    """Delete the bytes no attachment refers to (an upload whose request died before its commit,
    a photo's raw upload once its copies exist). Returns how many went."""
    referenced: set[str] = set()
    for row in session.execute(select(Attachment.upload_key, Attachment.file_key, Attachment.thumb_key)):
        referenced.update(k for k in row if k)
    gone = 0
    for key in store.all_keys() - referenced:
        store.delete(key)
        gone += 1
    return gone
