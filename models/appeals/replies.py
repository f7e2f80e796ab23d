"""Canned replies (常用答复): a department's stock answers, per category, kept by its head, with
placeholders filled from the appeal before a handler edits them."""

import string
from datetime import datetime

from sqlalchemy import Column, Index, Text, or_
from sqlmodel import Field, Session, SQLModel, col, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.refusal import Kind, Refused
from appealflow.models.storage.columns import UTCDateTime, utcnow


class CannedReply(SQLModel, table=True):
    """One stock answer of a department, for one category (and its sub-categories) or any."""

    __tablename__ = "canned_reply"
    __table_args__ = (Index("ix_canned_reply_department", "department_code", "category_code"),)

    id: int | None = Field(default=None, primary_key=True)
    department_code: str = Field(foreign_key="department.code", max_length=40)
    category_code: str | None = Field(default=None, foreign_key="category.code", max_length=60)
    title: str = Field(max_length=100)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


# What a reply may say about the appeal it answers. Nothing personal beyond what the requester
# already knows of themselves is needed, so only these are filled.
PLACEHOLDERS = {
    "title": "the appeal's title",
    "code": "its tracking code",
    "deadline": "its resolve deadline, in the city's time",
    "department": "the department's name",
}
MAX_BODY = 4000


class BadTemplate(Refused):
    """A canned reply that names a placeholder we do not fill, or is not a template at all."""

    kind = Kind.invalid


def check_body(body: str) -> str:
    """The body, if every {placeholder} in it is one we fill; refused naming the first that is not."""
    text = (body or "").strip()
    if not text:
        raise BadTemplate("a canned reply needs text", field="body")
    if len(text) > MAX_BODY:
        raise BadTemplate(f"at most {MAX_BODY} characters", field="body")
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as error:
        raise BadTemplate(f"not a template: {error} (write {{{{ and }}}} for a literal brace)", field="body") from None
    for name in names:
        if name not in PLACEHOLDERS:
            raise BadTemplate(f"unknown placeholder {{{name}}}: use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
                              field="body")
    return text


def fill(body: str, values: dict[str, str]) -> str:
    """The body with its placeholders filled; a stored body was checked, so this cannot fail on one."""
    return body.format_map({name: values.get(name, "") for name in PLACEHOLDERS})


def add_canned(session: Session, *, department_code: str, category_code: str | None, title: str, body: str,
               by: str) -> CannedReply:
    """A new stock answer; the caller commits."""
    title = (title or "").strip()
    if not title:
        raise BadTemplate("a canned reply needs a title", field="title")
    reply = CannedReply(department_code=department_code, category_code=category_code or None, title=title[:100],
                        body=check_body(body), created_by=by)
    session.add(reply)
    session.flush()
    return reply


def remove_canned(session: Session, department_code: str, reply_id: int) -> bool:
    """Delete one of the department's stock answers; False if it has none with this id."""
    reply = session.get(CannedReply, reply_id)
    if reply is None or reply.department_code != department_code:
        return False
    session.delete(reply)
    return True


def department_canned(session: Session, department_code: str) -> list[CannedReply]:
    """All of a department's stock answers, for its head to keep."""
    return list(session.exec(select(CannedReply).where(col(CannedReply.department_code) == department_code)
                             .order_by(col(CannedReply.category_code), col(CannedReply.title))))


def canned_for(session: Session, appeal: Appeal, lineage: list[str], values: dict[str, str]) -> list[dict]:
    """The department's stock answers that fit the appeal (its category or a parent of it, or any),
    nearest category first, each filled in for it."""
    if not appeal.department_code:
        return []
    rows = session.exec(select(CannedReply).where(
        col(CannedReply.department_code) == appeal.department_code,
        or_(col(CannedReply.category_code).is_(None), col(CannedReply.category_code).in_(lineage or [""]))))
    rank = {code: i for i, code in enumerate(lineage)}  # lineage is most specific first
    ordered = sorted(rows, key=lambda r: (rank.get(r.category_code or "", len(rank)), r.title))
    return [{"id": r.id, "title": r.title, "category": r.category_code, "text": fill(r.body, values)}
            for r in ordered]
