"""Receiving an appeal: stored with its `received` event in the caller's transaction."""

import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Select, String, Table, bindparam, func, insert, update
from sqlalchemy import cast as sql_cast
from sqlalchemy import select as sql_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent, IdempotencyKey
from appealflow.models.appeals.enums import AppealStatus, AppealType, Channel
from appealflow.models.appeals.tracking import new_tracking_code
from appealflow.models.city.department import Category, Department, place_name
from appealflow.models.refusal import Refused
from appealflow.models.storage.columns import rows_changed
from appealflow.models.telling.audience import Event, messages_for
from appealflow.models.telling.outbox import Notification, outbox_rows

LANGUAGES = ("zh", "en")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def language_of(title: str, text: str, chosen: str | None = None) -> str:
    """The language the requester reads: the one they chose, else English for an appeal written
    without a single Chinese character, else Chinese (the city's language, and the default)."""
    if chosen in LANGUAGES:
        return chosen
    return "zh" if _HAN.search(f"{title}{text}") else "en"


LATER_FIELDS = {"anonymous": False, "name_withheld": False, "privacy_notice": None, "latitude": None,
                "longitude": None, "position_accuracy_m": None}


@dataclass(frozen=True)
class NewAppeal:
    channel: str
    appeal_type: str
    priority: str
    title: str
    text: str
    category_code: str | None = None
    district: str | None = None
    street: str | None = None
    address: str | None = None
    requester_name: str | None = None
    requester_phone: str | None = None
    requester_email: str | None = None
    operator_id: str | None = None
    # None: the domain decides from the words (`language_of`), whichever door it came in by.
    language: str | None = None
    anonymous: bool = False  # no contact given, on purpose: nothing is sent to the requester
    name_withheld: bool = False
    privacy_notice: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    position_accuracy_m: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", language_of(self.title, self.text, self.language))

    def fingerprint(self) -> str:
        # asdict's output without its deep copy (every field is a string or None): the same hash
        # as before, so a retry that spans an upgrade still matches.
        fields = {f.name: getattr(self, f.name) for f in dataclass_fields(self)}
        for later in LATER_FIELDS:  # added since: left out at their defaults, so old hashes still match
            if fields[later] == LATER_FIELDS[later]:
                del fields[later]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class IntakeError(Refused):
    """Input the domain refuses; `field` names what to fix."""

    field: str

    def __init__(self, field: str, message: str):
        super().__init__(message, field=field)


class IdempotencyConflict(Refused):
    """The idempotency key was used before for a different appeal."""

    where, type = "header", "idempotency_conflict"

    def __init__(self, message: str):
        super().__init__(message, field="Idempotency-Key")


def check(session: Session, new: NewAppeal) -> None:
    if new.channel == Channel.hotline and not new.operator_id:
        raise IntakeError("operator_id", "a hotline appeal must name the operator who took the call")
    if new.category_code and new.category_code not in _catalogue(session).categories:
        raise IntakeError("category", f"unknown category {new.category_code!r}")
    if new.street and not new.district:
        raise IntakeError("location.district", "name the district the street is in")
    if new.district and not known_place(session, new.district, new.street):
        if new.street is None or not known_place(session, new.district, None):
            raise IntakeError("location.district", f"unknown district {new.district!r}; see GET /reference/districts")
        raise IntakeError("location.street",
                          f"unknown street {new.street!r} in {new.district!r}; see GET /reference/districts")
    if new.anonymous and (new.requester_phone or new.requester_email):
        raise IntakeError("anonymous", "匿名诉求不留电话和邮箱 / an anonymous appeal has no phone or e-mail")
    if not (new.requester_phone or new.requester_email or new.anonymous):
        raise IntakeError("requester", "请留下电话或电子邮箱以便答复您，或选择匿名 / give a phone number or an "
                          "e-mail address so we can reply, or choose to file anonymously")
    if new.name_withheld and not new.requester_name:
        raise IntakeError("name_withheld", "没有姓名可隐藏 / there is no name to keep from the department")
    if new.requester_email and not deliverable_email(new.requester_email):
        raise IntakeError("requester.email", "电子邮件地址 @ 前面的部分只能使用英文字母、数字和符号 / the part of the "
                          "e-mail address before the @ must be in Latin letters, digits and symbols: mail "
                          "servers cannot deliver to other addresses")


def deliverable_email(address: str) -> bool:
    """Whether a relay can take the address: its local part ASCII (a non-ASCII one needs SMTPUTF8,
    which relays rarely offer, and every send would fail), its domain ASCII or IDNA-encodable
    (例子.测试 goes out as xn--fsqu00a.xn--0zwm56d)."""
    local, _, domain = address.rpartition("@")
    if not local or not local.isascii() or not domain:
        return False
    try:
        domain.encode("idna")
    except UnicodeError:
        return False
    return True


CATALOGUE_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class _Catalogue:
    until: float
    places: frozenset[tuple[str, str | None]]
    categories: frozenset[str]


_catalogues: dict[str, _Catalogue] = {}
_catalogues_lock = threading.Lock()


def _catalogue(session: Session) -> _Catalogue:
    """The places and categories intake accepts, read once a minute per process rather than on every
    intake (they were one query in five, and on SQLite a read opens a write transaction early, so the
    write lock was held for the whole request): a street or category added to the catalogue is
    accepted within CATALOGUE_TTL_SECONDS."""
    key = str(session.get_bind().engine.url)
    with _catalogues_lock:
        cached = _catalogues.get(key)
    if cached is None or cached.until < time.monotonic():
        reading_alone = not session.in_transaction()
        rows = session.execute(select(col(Department.district), col(Department.street))
                               .where(col(Department.district).is_not(None))).all()
        codes = session.execute(select(col(Category.code))).scalars().all()
        if reading_alone:  # end the read's transaction, so the appeal's own begins with its writes
            session.rollback()
        cached = _Catalogue(time.monotonic() + CATALOGUE_TTL_SECONDS,
                            frozenset((d, s) for d, s in rows) | frozenset((d, None) for d, _ in rows),
                            frozenset(codes))
        with _catalogues_lock:
            _catalogues[key] = cached
    return cached


def known_place(session: Session, district: str, street: str | None) -> bool:
    """A district (or a street in it) the city's departments cover: routing can only place what
    the catalogue names, and a made-up place would silently fall back to the city level."""
    return (district, street) in _catalogue(session).places


def find_by_key(session: Session, key: str, new: NewAppeal) -> Appeal | None:
    """The appeal an earlier request with this key created; a different body under it is refused."""
    row = session.get(IdempotencyKey, key)
    if row is None:
        return None
    if row.request_hash != new.fingerprint():
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was already used for a different appeal")
    return session.get(Appeal, row.appeal_id)


_APPEAL, _EVENT, _NOTIFICATION, _KEY = (SQLModel.metadata.tables[str(model.__tablename__)]
                                        for model in (Appeal, AppealEvent, Notification, IdempotencyKey))
_APPEAL_COLUMNS = tuple(c.name for c in _APPEAL.columns if c.name != "id")


HOLD = "hold:"  # a claim held by an operator deciding, not by a worker: `hold:<operator>`


def receive(session: Session, new: NewAppeal, *, now: datetime, actor: str,
            idempotency_key: str | None = None, hold: timedelta | None = None) -> Appeal:
    """Add the appeal, its `received` event and its idempotency key; the caller commits. With `hold`,
    dispatch leaves the appeal alone that long (its operator is answering it on the spot).

    The rows go in as plain INSERTs on the session's connection, not through the ORM's unit of work:
    its flush cost intake a third of its Python, and on SQLite all of it ran inside the write lock
    that every intake waits for. Everything is prepared before the transaction begins. On PostgreSQL
    the four rows are one statement (a round trip each was most of intake's time under load). The
    appeal returned is not attached to the session; its id is set."""
    check(session, new)
    fields = {f.name: getattr(new, f.name) for f in dataclass_fields(new)}
    appeal = Appeal(**fields, code=new_tracking_code(now), status=AppealStatus.received,
                    received_at=now, updated_at=now)
    if hold:
        appeal.claimed_by, appeal.claimed_until = f"{HOLD}{new.operator_id}", now + hold
    # The messages name the appeal's id, which only the insert gives: they are written with a
    # stand-in, swapped for the id by the database (PostgreSQL) or here (SQLite) once it is known.
    appeal.id = stand_in = secrets.randbelow(9 * 10**17) + 10**17
    notes = outbox_rows(messages_for(Event.received, appeal, key="v1", departments={}), now=now)
    names = tuple(sorted(set().union(*notes)))  # one shape for every row, so one statement takes them all
    notes = [{name: note.get(name) for name in names} for note in notes]
    row = {name: getattr(appeal, name) for name in _APPEAL_COLUMNS}
    event = {"kind": "received", "actor": actor, "at": now, "from_status": None,
             "to_status": AppealStatus.received, "detail": {"channel": new.channel}}
    key = {"key": idempotency_key, "request_hash": new.fingerprint(), "created_at": now} if idempotency_key else None
    connection = session.connection()  # on SQLite: BEGIN IMMEDIATE, the write lock
    if connection.dialect.name == "postgresql" and all(str(stand_in) in n["dedupe_key"] for n in notes):
        statement = _one_statement(len(notes), names, key is not None)
        params = {f"a_{name}": value for name, value in row.items()}
        params |= {f"e_{name}": value for name, value in event.items()}
        params |= {f"n{i}_{name}": value for i, note in enumerate(notes) for name, value in note.items()}
        params |= {f"k_{name}": value for name, value in (key or {}).items()}
        appeal.id = connection.execute(statement, params | {"stand_in": str(stand_in)}).scalar_one()
        return appeal
    appeal.id = connection.execute(insert(_APPEAL).returning(_APPEAL.c.id), row).scalar_one()
    connection.execute(insert(_EVENT), event | {"appeal_id": appeal.id})
    # "Received" is said once, here, in the transaction that stores the appeal.
    if notes:
        connection.execute(insert(_NOTIFICATION), [
            n | {"appeal_id": appeal.id, "dedupe_key": n["dedupe_key"].replace(str(stand_in), str(appeal.id))}
            for n in notes])
    if key:
        connection.execute(insert(_KEY), key | {"appeal_id": appeal.id})
    return appeal


@lru_cache(maxsize=32)
def _one_statement(notes: int, note_columns: tuple[str, ...], with_key: bool) -> Select:
    """The appeal, its event, its messages and its key as one PostgreSQL statement: the appeal's
    insert returns its id, and the others, in the same WITH, read it from there. Foreign keys are
    checked at the end of the statement, when all four rows are in."""
    def params(table: Table, prefix: str, names) -> dict:
        return {name: bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in names}

    appeal = insert(_APPEAL).values(params(_APPEAL, "a_", _APPEAL_COLUMNS)).returning(_APPEAL.c.id).cte("new_appeal")
    appeal_id = sql_select(appeal.c.id).scalar_subquery()
    rows = [insert(_EVENT).values(params(_EVENT, "e_", ("kind", "actor", "at", "from_status", "to_status", "detail"))
                                  | {"appeal_id": appeal_id}).cte("new_event")]
    for i in range(notes):
        values = params(_NOTIFICATION, f"n{i}_", [n for n in note_columns if n not in ("appeal_id", "dedupe_key")])
        dedupe = func.replace(bindparam(f"n{i}_dedupe_key", type_=String()), bindparam("stand_in", type_=String()),
                              sql_cast(appeal_id, String()))
        rows.append(insert(_NOTIFICATION).values(values | {"appeal_id": appeal_id, "dedupe_key": dedupe})
                    .cte(f"new_notification_{i}"))
    if with_key:
        rows.append(insert(_KEY).values(params(_KEY, "k_", ("key", "request_hash", "created_at"))
                                        | {"appeal_id": appeal_id}).cte("new_key"))
    return sql_select(appeal.c.id).add_cte(*rows)


def receive_once(session: Session, new: NewAppeal, *, now: datetime, actor: str,
                 idempotency_key: str | None, hold: timedelta | None = None) -> tuple[Appeal, bool]:
    """Receive, or return what an earlier request with the same key created; the caller commits.
    Call it before anything else is written in the transaction.

    A retry (or a concurrent request with the same key) fails to insert the key on its primary key;
    the transaction, holding nothing but this appeal's rows, is rolled back and the first appeal
    returned. Nothing is looked up before the insert and no savepoint is taken: retries are rare, and
    those cost every first request three statements of its eight.
    """
    try:
        return receive(session, new, now=now, actor=actor, idempotency_key=idempotency_key, hold=hold), True
    except IntegrityError:
        session.rollback()
        if idempotency_key:
            existing = find_by_key(session, idempotency_key, new)
            if existing is not None:
                return existing, False
        raise


def check_hold(new: NewAppeal) -> None:
    """Only an operator's consultation is held for an answer on the spot: anything else is routed."""
    if new.channel != Channel.hotline or not new.operator_id or new.appeal_type != AppealType.consultation:
        raise IntakeError("answer_now", "只有话务员受理的咨询可以当场答复 / only a consultation an operator "
                          "files can be answered on the spot")


def release_hold(session: Session, appeal: Appeal, operator_id: str) -> bool:
    """Route it now after all: the operator's hold ends and dispatch may take the appeal. False if
    there was no such hold (answered, or the hold had run out and dispatch took it)."""
    result = session.execute(update(Appeal).where(
        col(Appeal.id) == appeal.id, col(Appeal.status) == AppealStatus.received,
        col(Appeal.claimed_by) == f"{HOLD}{operator_id}").values(claimed_by=None, claimed_until=None))
    return rows_changed(result) > 0


def history(session: Session, appeal_id: int | None) -> list[AppealEvent]:
    return list(session.exec(select(AppealEvent).where(col(AppealEvent.appeal_id) == appeal_id)
                             .order_by(col(AppealEvent.id))))


def districts(session: Session) -> list[dict]:
    """The districts and streets intake accepts, named as the city's departments are named (the
    district government, the street office), Chinese first with English beside it."""
    rows = session.exec(select(Department).where(col(Department.district).is_not(None))
                        .order_by(col(Department.district), col(Department.street))).all()
    found: dict[str, dict] = {}
    for row in rows:
        if row.district is None:
            continue
        place = found.setdefault(row.district, {"code": row.district, "name_zh": None, "name_en": None,
                                                "streets": []})
        zh, en = place_name(row.name_zh, row.name_en, street=row.street is not None)
        if row.street is None:
            place["name_zh"] = place["name_zh"] or zh
            place["name_en"] = place["name_en"] or en
        elif row.street not in {s["code"] for s in place["streets"]}:
            place["streets"].append({"code": row.street, "name_zh": zh, "name_en": en})
    return list(found.values())


def categories(session: Session) -> list[dict]:
    """Every category intake accepts, parents before children."""
    rows = session.exec(select(Category)).all()
    children: dict[str | None, list[Category]] = {}
    for row in rows:
        children.setdefault(row.parent_code, []).append(row)
    ordered: list[dict] = []

    def walk(parent: str | None) -> None:
        for row in sorted(children.get(parent, []), key=lambda c: c.code):
            ordered.append({"code": row.code, "name_zh": row.name_zh, "name_en": row.name_en,
                            "parent": row.parent_code})
            walk(row.code)

    walk(None)
    return ordered
