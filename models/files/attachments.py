"""An appeal's files: what they are, who added them, who sees them, and the checks every file
passes before it is kept.

A file's type is decided by its content, never by its name or the header it came with. Photos are
kept only as re-encoded copies (models/files/images.py, in a worker): the upload itself, with its
EXIF (the citizen's GPS position, the camera's serial), is held until then and never served. PDFs
are kept as they are and only ever downloaded, never shown inline from our origin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Column, and_, or_, update
from sqlmodel import Field, Session, SQLModel, col, func, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.files.store import BlobStore
from appealflow.models.refusal import Kind, Refused
from appealflow.models.storage.columns import UTCDateTime, rows_changed, stored_id


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
    # A photo a worker is making copies of, until then (a worker that died lets it go when this passes).
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class FileRefused(Refused):
    def __init__(self, message: str, kind: Kind = Kind.invalid, field: str = "files"):
        super().__init__(message, field=field)
        self.kind = kind


MAX_AT_ONCE = 6  # files in one upload (a filing form's, or one "add files")
ACCEPTED = "JPEG, PNG, WebP, HEIC, PDF"
# ISO media files whose brand is a HEIF still image (what an iPhone's camera saves): bytes 4-8 are
# "ftyp", 8-12 the brand.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def sniff(data: bytes) -> tuple[FileKind, str] | None:
    """What the bytes are, by their signature: (kind, type) or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return FileKind.photo, "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind.photo, "image/png"
    if len(data) > 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return FileKind.photo, "image/webp"
    if len(data) > 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return FileKind.photo, "image/heic"
    if data.startswith(b"%PDF-"):
        return FileKind.document, "application/pdf"
    return None


_UNSAFE_NAME = re.compile(r"[^\w.\- ()\u4e00-\u9fff]+")


def safe_name(name: str | None, content_type: str) -> str:
    """A display name with no path, control or quoting characters, and the extension of what it is."""
    stem = _UNSAFE_NAME.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" ._")[:80] or "file"
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    extension = {'image/jpeg': 'jpg', 'image/png': 'png', 'image/webp': 'webp', 'image/heic': 'heic'}
    return f"{stem}.{extension.get(content_type, 'pdf')}"


def _room_for(count: int, *, held: int, max_per_appeal: int) -> None:
    if held + count > max_per_appeal:
        raise FileRefused(f"一件诉求最多 {max_per_appeal} 个文件 / at most {max_per_appeal} files per appeal",
                          Kind.too_large)


def checked_uploads(uploads: list[tuple[str | None, bytes]], *, max_file_bytes: int,
                    max_per_appeal: int) -> list[tuple[str | None, bytes, FileKind, str]]:
    """Each upload's kind and type, once every one is within the limits and of a kind we take;
    FileRefused naming the first that is not. Pages ask this before filing, so a refused photo
    never leaves an appeal filed without it."""
    _room_for(len(uploads), held=0, max_per_appeal=max_per_appeal)
    checked = []
    for name, data in uploads:
        if len(data) > max_file_bytes:
            raise FileRefused(f"文件 {safe_name(name, '')} 超过 {max_file_bytes // (1024 * 1024)} MB / "
                              f"a file is over {max_file_bytes} bytes", Kind.too_large)
        found = sniff(data)
        if found is None:
            raise FileRefused(f"只接受 {ACCEPTED} / only {ACCEPTED} files are taken", Kind.unsupported)
        checked.append((name, data, *found))
    return checked


def count_of(session: Session, appeal: Appeal) -> int:
    return session.execute(select(func.count()).select_from(Attachment)
                           .where(col(Attachment.appeal_id) == appeal.id)).scalar_one()


@dataclass(frozen=True)
class Kept:
    """An upload that passed the checks, its bytes in the store, not yet any appeal's."""

    name: str | None
    size: int
    kind: FileKind
    content_type: str
    key: str


def keep_uploads(store: BlobStore, uploads: list[tuple[str | None, bytes]], *, max_file_bytes: int,
                 max_per_appeal: int) -> list[Kept]:
    """Check every upload (type by content, size, how many) and put its bytes in the store, before
    any transaction is open: on SQLite a transaction holds the write lock, and megabytes written and
    synced to disk under it would hold every other writer. Bytes whose appeal then refuses them
    (closed, or full) belong to nobody, and the collection takes them."""
    checked = checked_uploads(uploads, max_file_bytes=max_file_bytes, max_per_appeal=max_per_appeal)
    return [Kept(name, len(data), kind, content_type, store.put(data)) for name, data, kind, content_type in checked]


def add_files(session: Session, appeal: Appeal, kept: list[Kept], *, added_by: str, now: datetime,
              visibility: Visibility = Visibility.public, purpose: str = "filing",
              max_per_appeal: int) -> list[Attachment]:
    """Make the kept uploads the appeal's, all or none: a row each and one event in its history.
    Photos wait for a worker to make their copies."""
    if not kept:
        return []
    _room_for(len(kept), held=count_of(session, appeal), max_per_appeal=max_per_appeal)
    rows = []
    for upload in kept:
        photo = upload.kind == FileKind.photo
        served_type = "image/jpeg" if photo else upload.content_type
        rows.append(Attachment(appeal_id=stored_id(appeal), added_by=added_by, added_at=now, kind=upload.kind,
                               content_type=served_type, name=safe_name(upload.name, served_type), size=upload.size,
                               visibility=visibility, purpose=purpose,
                               state=FileState.processing if photo else FileState.ready,
                               upload_key=upload.key if photo else None, file_key=None if photo else upload.key))
    session.add_all(rows)
    photos = sum(r.kind == FileKind.photo for r in rows)
    session.add(AppealEvent(appeal_id=stored_id(appeal), kind="files_added", actor=added_by, at=now,
                            detail={"photos": photos, "documents": len(rows) - photos, "visibility": visibility,
                                    "purpose": purpose}))
    session.flush()
    return rows


def attached(session: Session, appeal_ids: list[int], *, where: str, purpose: str | None = None,
             public_only: bool = False) -> dict[int, dict[str, str]]:
    """For messages: each appeal's "附照片 3 张" in both languages, saying `where` ("workbench" or
    "tracking") to see them. Only a count and a pointer: no file ever travels with a message."""
    if not appeal_ids:
        return {}
    query = select(Attachment.appeal_id, Attachment.kind, func.count()).where(
        col(Attachment.appeal_id).in_(appeal_ids), col(Attachment.state) != FileState.refused)
    if purpose is not None:
        query = query.where(col(Attachment.purpose) == purpose)
    if public_only:
        query = query.where(col(Attachment.visibility) == Visibility.public)
    counts: dict[int, dict[str, int]] = {}
    for appeal_id, kind, n in session.execute(query.group_by(col(Attachment.appeal_id), col(Attachment.kind))):
        counts.setdefault(appeal_id, {})[kind] = n
    return {appeal_id: attached_words(c.get(FileKind.photo, 0), c.get(FileKind.document, 0), where)
            for appeal_id, c in counts.items()}


def attached_words(photos: int, documents: int, where: str) -> dict[str, str]:
    zh = "、".join(([f"照片 {photos} 张"] if photos else []) + ([f"文件 {documents} 个"] if documents else []))
    en = " and ".join(([f"{photos} photo{'s' * (photos != 1)}"] if photos else [])
                      + ([f"{documents} document{'s' * (documents != 1)}"] if documents else []))
    place_zh, place_en = {"workbench": ("请在工作台查看", "open them in the workbench"),
                          "tracking": ("请在跟踪页面查看", "see them on the tracking page")}[where]
    return {"zh": f"附{zh}，{place_zh}。", "en": f"{en} attached: {place_en}."}


def requesters_photo():
    """WHERE an attachment is a photo the requester sent (at filing or after), as figures count them."""
    return and_(col(Attachment.kind) == FileKind.photo, col(Attachment.purpose).in_(("filing", "addition")),
                col(Attachment.state) != FileState.refused)


def shown_requesters_photo():
    """WHERE an attachment is a requester's photo anyone reading the request may see: public, and
    only as its copies (ready), never the raw upload."""
    return and_(requesters_photo(), col(Attachment.state) == FileState.ready,
                col(Attachment.visibility) == Visibility.public)


def files_of(session: Session, appeal: Appeal, *, staff: bool) -> list[Attachment]:
    """The files a reader of the appeal sees: staff every one, the requester the public ones."""
    query = select(Attachment).where(col(Attachment.appeal_id) == appeal.id, col(Attachment.state) != FileState.refused)
    if not staff:
        query = query.where(col(Attachment.visibility) == Visibility.public)
    return list(session.exec(query.order_by(col(Attachment.id))))


def one_file(session: Session, appeal: Appeal, file_id: int, *, staff: bool) -> Attachment | None:
    return next((f for f in files_of(session, appeal, staff=staff) if f.id == file_id), None)


def photos_waiting(session: Session) -> bool:
    """Whether any photo waits for its copies (claimed or not): the reconciler's cue to wake a worker."""
    return session.exec(select(Attachment.id).where(col(Attachment.state) == FileState.processing).limit(1)).first() \
        is not None


def claim_photo(session: Session, *, now: datetime, lease: timedelta = timedelta(minutes=2)) -> Attachment | None:
    """The oldest photo waiting for its copies that no worker holds, now held by the caller until
    `now + lease`; None when none waits. The claim is one guarded UPDATE: two workers never make
    the same copies, and the caller commits it at once, so no lock is held while images are made."""
    free = or_(col(Attachment.claimed_until).is_(None), col(Attachment.claimed_until) < now)
    for attachment_id in session.exec(select(Attachment.id).where(col(Attachment.state) == FileState.processing, free)
                                      .order_by(col(Attachment.id)).limit(8)):
        taken = session.execute(update(Attachment).where(col(Attachment.id) == attachment_id,
                                                         col(Attachment.state) == FileState.processing, free)
                                .values(claimed_until=now + lease))
        if rows_changed(taken) == 1:
            return session.get(Attachment, attachment_id)
    return None


def collect_unreferenced(session: Session, store: BlobStore, *, written_before: datetime | None = None) -> int:
    """Delete the bytes no attachment refers to (an upload whose request died before its commit,
    a photo's raw upload once its copies exist), of those last written before `written_before`:
    an upload whose row is on its way to a commit is young, and left alone. Returns how many went."""
    candidates = store.all_keys(written_before)  # listed before the references are read, never after
    referenced: set[str] = set()
    for row in session.execute(select(Attachment.upload_key, Attachment.file_key, Attachment.thumb_key)):
        referenced.update(k for k in row if k)
    gone = 0
    for key in candidates - referenced:
        store.delete(key)
        gone += 1
    return gone
