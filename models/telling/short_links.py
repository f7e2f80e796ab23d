"""Short links for text messages: `/s/KEY` redirects to the appeal's tracking link, so an SMS fits one
segment. The key is random (eight characters of 32: 40 bits), stored with the appeal's code, one per
appeal and reused by every message about it; the link it leads to holds the access token, which the
short key itself never reveals. Guessing keys is rate-limited where they are opened (api/short_links.py)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Column
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from appealflow.models.storage.columns import UTCDateTime

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # the codes' 32 signs: no 0/O, 1/I, read off a small screen
KEY_LENGTH = 8


class ShortLink(SQLModel, table=True):
    __tablename__ = "short_link"

    key: str = Field(primary_key=True, max_length=16)
    code: str = Field(max_length=20, unique=True, index=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


def new_key() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(KEY_LENGTH))


def key_for(session: Session, code: str, *, now: datetime) -> str:
    """The appeal's short key, made the first time it is needed; two workers making it at once agree
    on the one stored first. The caller commits."""
    found = session.execute(select(ShortLink.key).where(col(ShortLink.code) == code)).scalar_one_or_none()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            session.add(ShortLink(key=new_key(), code=code, created_at=now))
    except IntegrityError:  # made meanwhile by another worker (or, once in 2^40, the same key)
        pass
    return session.execute(select(ShortLink.key).where(col(ShortLink.code) == code)).scalar_one()


def code_for(session: Session, key: str) -> str | None:
    """The appeal a key leads to; keys are read case-blind, as people type them."""
    key = key.upper()
    if len(key) != KEY_LENGTH or any(c not in ALPHABET for c in key):
        return None
    return session.execute(select(ShortLink.code).where(col(ShortLink.key) == key)).scalar_one_or_none()
