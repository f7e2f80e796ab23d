"""Staff accounts and machine clients, and how they prove who they are."""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel, col, select

from appealflow.models.appeals.enums import DEPARTMENT_ROLES, Role
from appealflow.models.storage.columns import UTCDateTime, utcnow


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=100)
    role: str = Field(max_length=20)
    department_code: str | None = Field(default=None, foreign_key="department.code", max_length=40)
    password_hash: str = Field(max_length=200)
    active: bool = True
    # Where this person hears of the appeals given to them: an Apprise URL (mailto:, a bot's json://).
    notify: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ApiKey(SQLModel, table=True):
    """A machine client's key; only its hash is kept. It acts with its owner's role."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="staff_user.id")
    label: str = Field(max_length=100)
    revoked: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


@dataclass(frozen=True)
class Staff:
    """Who is acting: what authorization needs, detached from the database."""

    id: int
    username: str
    role: Role
    department_code: str | None

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.username}"


class StaffError(ValueError):
    pass


# Argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 40 ms of CPU a check here,
# where argon2-cffi's default (64 MiB, 3 passes, 4 lanes) took 300 ms, and sign-in is rate limited
# per address and per username anyway. Hashes made with other parameters still verify: a hash holds its own.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def as_staff(user: StaffUser) -> Staff:
    assert user.id is not None, "a stored account"
    return Staff(user.id, user.username, Role(user.role), user.department_code)


def add_user(session: Session, *, username: str, password: str, role: Role, display_name: str | None = None,
             department_code: str | None = None, notify: str | None = None) -> StaffUser:
    """A new account; refused (StaffError) if the role and department disagree or the name is taken."""
    if (role in DEPARTMENT_ROLES) != bool(department_code):
        raise StaffError("handlers and department heads belong to a department; no other role does")
    if len(password) < 8:
        raise StaffError("a password has at least 8 characters")
    if notify is not None and not re.fullmatch(r"[a-z][a-z0-9+.-]*:\S+", notify.strip(), re.IGNORECASE):
        raise StaffError("--notify is an address to reach the person: mailto:ADDRESS or an Apprise URL")
    if session.exec(select(StaffUser).where(col(StaffUser.username) == username)).first():
        raise StaffError(f"user {username!r} exists")
    user = StaffUser(username=username, display_name=display_name or username, role=role,
                     department_code=department_code, password_hash=_hasher.hash(password), notify=notify)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> Staff | None:
    user = session.exec(select(StaffUser).where(col(StaffUser.username) == username)).first()
    if user is None or not user.active:
        _hasher.hash(password)  # the same work as a real check, so timing does not tell who exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except VerificationError:
        return None
    return as_staff(user)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_api_key(session: Session, user: StaffUser, label: str) -> str:
    """A new key, shown once."""
    key = "afk_" + secrets.token_urlsafe(32)
    assert user.id is not None, "a stored account"
    session.add(ApiKey(key_hash=_key_hash(key), user_id=user.id, label=label))
    return key


def staff_for_api_key(session: Session, key: str) -> Staff | None:
    row = session.exec(select(ApiKey).where(col(ApiKey.key_hash) == _key_hash(key),
                                            col(ApiKey.revoked).is_(False))).first()
    if row is None:
        return None
    user = session.get(StaffUser, row.user_id)
    return as_staff(user) if user and user.active else None


def staff_by_id(session: Session, user_id: int) -> Staff | None:
    user = session.get(StaffUser, user_id)
    return as_staff(user) if user and user.active else None


DEMO_DEPARTMENTS = ("urban_management", "housing", "water_supply_group", "shinan_badaguan")


def ensure_demo_staff(session: Session, password: str) -> list[str]:
    """One account per role, and a handler and a head for a few departments; existing ones are kept."""
    wanted: list[tuple[str, Role, str | None]] = [
        ("operator", Role.operator, None), ("dispatcher", Role.dispatcher, None),
        ("supervisor", Role.supervisor, None), ("admin", Role.admin, None)]
    for code in DEMO_DEPARTMENTS:
        wanted += [(f"handler.{code}", Role.handler, code), (f"head.{code}", Role.department_head, code)]
    made = []
    for username, role, department in wanted:
        if session.exec(select(StaffUser).where(col(StaffUser.username) == username)).first() is None:
            add_user(session, username=username, password=password, role=role, department_code=department)
            made.append(username)
    return made
