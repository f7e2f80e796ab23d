"""Files of an appeal over HTTP: the requester's (with their token) and staff's (through the same
access query as the appeal itself: another department's file is a 404 like its appeal).

Served bytes carry their own type, `nosniff`, a CSP that lets them run nothing, and a disposition:
photos inline, PDFs always as a download, never rendered from our origin."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Response, UploadFile
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from appealflow.api import ratelimit
from appealflow.api.auth import current_staff
from appealflow.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from appealflow.api.tracking import NOT_FOUND, Code, TokenHeader, TokenQuery, _own_appeal
from appealflow.api.workbench import readable
from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import CENTRE_ROLES, DEPARTMENT_ROLES, OPEN_STATUSES, AppealStatus, Role
from appealflow.models.appeals.open311 import public_photo
from appealflow.models.appeals.tracking import token_matches
from appealflow.models.city.people import Staff
from appealflow.models.files.attachments import (
    MAX_AT_ONCE,
    Attachment,
    FileKind,
    FileState,
    Kept,
    Visibility,
    add_files,
    files_of,
    keep_uploads,
    one_file,
)
from appealflow.models.files.store import store_for
from appealflow.models.storage.columns import utcnow
from appealflow.settings import Settings
from appealflow.workers.queues import FILES

router = APIRouter(tags=["files"], dependencies=[Depends(ratelimit.limit("tracking"))])
staff_router = APIRouter(tags=["files"])

FileId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Copy = Literal["thumb", "screen", "file"]
# The requester adds files while someone still acts on the appeal (from filing to the reply).
REQUESTER_MAY_ADD = (AppealStatus.received, AppealStatus.triage, *OPEN_STATUSES)


def file_view(attachment: Attachment, base: str, token: str | None = None) -> dict:
    """A file as a reader sees it, with the addresses of its copies (the token for a requester's)."""
    suffix = f"?token={token}" if token else ""
    copies = (["thumb", "screen"] if attachment.kind == FileKind.photo else ["file"]) \
        if attachment.state == FileState.ready else []
    return dict(id=attachment.id, kind=attachment.kind, name=attachment.name, size=attachment.size,
                state=attachment.state, visibility=attachment.visibility, purpose=attachment.purpose,
                added_by="requester" if attachment.added_by == "requester" else "staff",
                added_at=attachment.added_at, width=attachment.width, height=attachment.height,
                urls={c: f"{base}/files/{attachment.id}/{c}{suffix}" for c in copies})


async def _uploads(files: list[UploadFile], limit: int) -> list[tuple[str | None, bytes]]:
    if len(files) > MAX_AT_ONCE:
        raise HTTPException(413, f"一次最多 {MAX_AT_ONCE} 个文件 / at most {MAX_AT_ONCE} files at once")
    out = []
    for upload in files:
        data = await upload.read(limit + 1)  # one byte over is enough to say it is too big
        if data:
            out.append((upload.filename, data))
    return out


def _serve(attachment: Attachment | None, copy: str, settings: Settings) -> Response:
    if attachment is None:
        raise HTTPException(404, "没有这个文件 / no such file")
    if attachment.state != FileState.ready:
        raise HTTPException(409, "照片处理中，请稍后再看 / the photo is being processed; try again shortly")
    key = {"thumb": attachment.thumb_key, "screen": attachment.file_key, "file": attachment.file_key}[copy]
    if key is None or (copy == "file") != (attachment.kind == FileKind.document):
        raise HTTPException(404, "没有这个文件 / no such file")
    data = store_for(settings.data_dir, settings.file_store).get(key)
    disposition = "inline" if attachment.kind == FileKind.photo else "attachment"
    name = attachment.name.encode("ascii", "replace").decode().replace('"', "_")
    return Response(data, media_type=attachment.content_type, headers={
        "Content-Disposition": f'{disposition}; filename="{name}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600"})


def _keep(settings: Settings, uploads) -> list[Kept]:
    """The uploads checked and their bytes stored, with no transaction open (models/files/attachments.py)."""
    return keep_uploads(store_for(settings.data_dir, settings.file_store), uploads,
                        max_file_bytes=settings.max_file_bytes, max_per_appeal=settings.max_files_per_appeal)


def _add(unit, settings: Settings, appeal: Appeal, kept: list[Kept], *, by: str, visibility: Visibility,
         purpose: str) -> list[Attachment]:
    rows = add_files(unit.session, appeal, kept, added_by=by, now=utcnow(), visibility=visibility, purpose=purpose,
                     max_per_appeal=settings.max_files_per_appeal)
    if any(r.state == FileState.processing for r in rows):
        unit.wake(FILES)
    unit.commit()
    return rows


@router.post("/appeals/{code}/files", status_code=201)
async def add_own_files(code: Code, unit: UnitOfWorkDep, settings: SettingsDep,
                        files: Annotated[list[UploadFile], File(description="photos (JPEG, PNG, WebP, HEIC) or PDFs")],
                        token: TokenQuery = None, x_access_token: TokenHeader = None) -> dict:
    """The requester adds photos or documents while the appeal is open."""
    token = x_access_token or token
    if not token_matches(settings.signing_key(), code, token):  # before any byte is stored
        raise HTTPException(404, NOT_FOUND)
    uploads = await _uploads(files, settings.max_file_bytes)
    # In worker threads, since writing megabytes and syncing them to disk would hold the event loop;
    # the bytes before the transaction (on SQLite a transaction holds the write lock), and no await
    # while the transaction is open.
    kept = await run_in_threadpool(_keep, settings, uploads)
    return await run_in_threadpool(_add_own, unit, settings, code, token, kept)


def _add_own(unit, settings: Settings, code: str, token: str | None, kept: list[Kept]) -> dict:
    appeal = _own_appeal(unit.session, settings, code, token)
    if appeal.status not in REQUESTER_MAY_ADD:
        raise HTTPException(409, "诉求已办结，不能再添加文件 / the appeal is closed: no more files")
    rows = _add(unit, settings, appeal, kept, by="requester", visibility=Visibility.public,
                purpose="filing" if appeal.status == AppealStatus.received else "addition")
    return {"files": [file_view(r, f"/appeals/{appeal.code}", token) for r in rows]}


@router.get("/appeals/{code}/files")
def own_files(code: Code, session: SessionDep, settings: SettingsDep, token: TokenQuery = None,
              x_access_token: TokenHeader = None) -> dict:
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    return {"files": [file_view(f, f"/appeals/{appeal.code}", x_access_token or token)
                      for f in files_of(session, appeal, staff=False)]}


@router.get("/appeals/{code}/files/{file_id}/{copy}")
def own_file(code: Code, file_id: FileId, copy: Copy, session: SessionDep, settings: SettingsDep,
             token: TokenQuery = None, x_access_token: TokenHeader = None) -> Response:
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    return _serve(one_file(session, appeal, file_id, staff=False), copy, settings)


# Who adds files: the handling department (or one assisting: the access query let them read it) and the centre.
MAY_ADD = DEPARTMENT_ROLES | CENTRE_ROLES


@staff_router.post("/staff/appeals/{code}/files", status_code=201)
async def add_staff_files(code: Code, unit: UnitOfWorkDep, settings: SettingsDep,
                          staff: Annotated[Staff, Depends(current_staff)],
                          files: Annotated[list[UploadFile], File(description="photos or PDFs")],
                          visibility: Annotated[Visibility, Form()] = Visibility.staff,
                          purpose: Annotated[Literal["reply", "contact", "note", "filing"], Form()] = "note") -> dict:
    """Evidence: a reply's files the requester sees (visibility=public), a note's staff only; or
    what a caller sent the operator who filed for them (purpose=filing)."""
    uploads = await _uploads(files, settings.max_file_bytes)
    # Signing in read the database: that transaction ends before megabytes are stored (see above).
    await run_in_threadpool(unit.session.rollback)
    kept = await run_in_threadpool(_keep, settings, uploads)

    def add() -> dict:
        appeal = readable(unit.session, staff, code)
        # An operator adds only what a caller sent with the call they filed.
        if staff.role not in MAY_ADD and not (staff.role == Role.operator and purpose == "filing"):
            raise HTTPException(403, "只有承办部门和热线中心可以添加文件 / "
                                     "only the handling department and the centre add files")
        rows = _add(unit, settings, appeal, kept, by=f"staff:{staff.username}", visibility=visibility,
                    purpose=purpose)
        return {"files": [file_view(r, f"/staff/appeals/{appeal.code}") for r in rows]}

    return await run_in_threadpool(add)


@staff_router.get("/staff/appeals/{code}/files")
def staff_files(code: Code, session: SessionDep, staff: Annotated[Staff, Depends(current_staff)]) -> dict:
    appeal = readable(session, staff, code)
    return {"files": [file_view(f, f"/staff/appeals/{appeal.code}") for f in files_of(session, appeal, staff=True)]}


@staff_router.get("/staff/appeals/{code}/files/{file_id}/{copy}")
def staff_file(code: Code, file_id: FileId, copy: Copy, session: SessionDep, settings: SettingsDep,
               staff: Annotated[Staff, Depends(current_staff)]) -> Response:
    appeal = readable(session, staff, code)
    return _serve(one_file(session, appeal, file_id, staff=True), copy, settings)


@router.get("/media/{code}/{file_id}.jpg")
def open311_photo(code: Code, file_id: FileId, session: SessionDep, settings: SettingsDep) -> Response:
    """The photo an Open311 GET names as a request's media_url: readable by anyone, as the request
    itself is; only the requester's own public photos of Open311 requests, and only their copies."""
    served = _serve(public_photo(session, code, file_id), "screen", settings)
    served.headers["Cache-Control"] = "public, max-age=3600"
    return served


def public_files(session: Session, appeal: Appeal, token: str | None) -> list[dict]:
    """For the tracking view: the requester's own files and the replies' evidence."""
    return [file_view(f, f"/appeals/{appeal.code}", token) for f in files_of(session, appeal, staff=False)]
