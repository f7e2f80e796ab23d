"""Routing model versions in the database: the zero-shot start, trained candidates, promotion only
when a candidate beats the active model on held-out appeals, and rollback.

Every worker reads the active version's id once per batch (one indexed row) and loads the blob only
when it changed, so a promotion reaches every process without a restart and a batch never reloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Column, LargeBinary, update
from sqlmodel import JSON, Field, Session, SQLModel, col, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.city.department import Category
from appealflow.models.routing.classifier import (
    MODEL_FORMAT,
    CategoryModel,
    CategoryText,
    Item,
    OutdatedModel,
    appeal_text,
    embedder,
    judge,
)
from appealflow.models.routing.keywords import Catalogue
from appealflow.models.routing.training import Labelled, Outcome, fit, outcome, split
from appealflow.models.storage.columns import UTCDateTime, stored_id, utcnow


class ClassifierVersion(SQLModel, table=True):
    __tablename__ = "classifier_version"

    id: int | None = Field(default=None, primary_key=True)
    embedder: str = Field(max_length=40)
    status: str = Field(default="candidate", max_length=20, index=True)  # candidate, active, retired
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    promoted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    trained_on: int = 0
    metrics: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))

    @property
    def label(self) -> str:
        return f"v{self.id}"


def category_texts(session: Session) -> list[CategoryText]:
    return [CategoryText(c.code, c.name_zh, c.name_en, tuple(c.keywords), c.description_zh, c.description_en,
                         tuple(c.examples))
            for c in session.exec(select(Category).order_by(col(Category.code)))]


def _save(session: Session, model: CategoryModel, *, status: str, trained_on: int, metrics: dict) -> ClassifierVersion:
    row = ClassifierVersion(embedder=model.embedder, status=status, created_at=utcnow(), trained_on=trained_on,
                            metrics=metrics, blob=b"", promoted_at=utcnow() if status == "active" else None)
    session.add(row)
    session.flush()
    model.version = row.label
    row.blob = model.to_bytes()
    session.flush()
    return row


def zero_shot(categories: list[CategoryText], backend: str, cache_dir: Path | None) -> CategoryModel:
    """The zero-shot model for this category tree, from the cache when the tree is unchanged:
    embedding some 800 names and keywords takes tens of seconds on a busy CPU."""
    key = hashlib.sha256(json.dumps([backend, MODEL_FORMAT, *[[*c.prompts(), *c.examples, *c.keywords]
                                                               for c in categories]], ensure_ascii=False)
                         .encode()).hexdigest()[:20]
    path = cache_dir / f"zero-shot-{key}.npz" if cache_dir else None
    if path and path.exists():
        try:
            return CategoryModel.from_bytes(path.read_bytes())
        except Exception:  # a torn write from a killed process: rebuild it
            path.unlink(missing_ok=True)
    model = CategoryModel.zero_shot(categories, embedder(backend))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(model.to_bytes())
        tmp.replace(path)
    return model


def ensure_active(session: Session, backend: str = "e5", cache_dir: Path | None = None) -> ClassifierVersion:
    """The active version; the first call builds the zero-shot one from the category tree, and so
    does a call that finds the active one written by an older model format."""
    row = session.exec(select(ClassifierVersion).where(col(ClassifierVersion.status) == "active")
                       .order_by(col(ClassifierVersion.promoted_at).desc())).first()
    if row is not None:
        try:
            CategoryModel.from_bytes(row.blob)
            return row
        except OutdatedModel:
            row.status = "retired"
            session.add(row)
            session.flush()
    model = zero_shot(category_texts(session), backend, cache_dir)
    return _save(session, model, status="active", trained_on=0, metrics={"kind": "zero-shot"})


_cache: dict[str, tuple[int, CategoryModel]] = {}
_cache_lock = threading.Lock()


def active_model(session: Session, backend: str = "e5", cache_dir: Path | None = None) -> CategoryModel:
    """The active model, from this process's cache unless another version was promoted since."""
    current = session.execute(select(col(ClassifierVersion.id)).where(col(ClassifierVersion.status) == "active")
                              .order_by(col(ClassifierVersion.promoted_at).desc()).limit(1)).scalar()
    with _cache_lock:
        cached = _cache.get(backend)
        if cached and cached[0] == current:
            return cached[1]
    row = session.get(ClassifierVersion, current) if current is not None else None
    try:
        model = CategoryModel.from_bytes(row.blob) if row is not None else None
    except OutdatedModel:
        model = None
    if row is None or model is None:
        row = ensure_active(session, backend, cache_dir)
        model = CategoryModel.from_bytes(row.blob)
    with _cache_lock:
        _cache[backend] = (stored_id(row), model)
    return model


CONFIRMED = (AppealStatus.accepted, AppealStatus.in_progress, AppealStatus.replied, AppealStatus.closed)


def confirmed_history(session: Session, catalogue: Catalogue, limit: int = 20000) -> list[Labelled]:
    """Appeals a department accepted as its own, with the category they were placed under: the
    department's acceptance is the confirmation. A category that would route elsewhere at that place
    (a dispatcher overrode it) teaches the department, not the category."""
    rows = session.exec(select(Appeal).where(col(Appeal.status).in_(CONFIRMED),
                                             col(Appeal.department_code).is_not(None))
                        .order_by(col(Appeal.id).desc()).limit(limit)).all()
    out = []
    for a in rows:
        route = catalogue.route(a.category_code, a.district, a.street) if a.category_code else None
        category = a.category_code if route and route.department_code == a.department_code else None
        urgent = a.priority == "urgent"
        out.append(Labelled(Item(a.title, a.text, a.district, a.street, urgent), (a.department_code or "",), category,
                            urgent))
    return out


@dataclass
class TrainReport:
    candidate: ClassifierVersion
    active_label: str
    candidate_holdout: Outcome
    active_holdout: Outcome
    promoted: bool


def train(session: Session, catalogue: Catalogue, labelled: list[Labelled], *, backend: str = "e5",
          promote_if_better: bool = True, cache_dir: Path | None = None) -> TrainReport:
    """Train a new version on 70% of the labelled appeals (its head on their texts, its weights and
    threshold calibrated out of fold); compare it with the active one on the other 30%; promote it
    only if it scores better there."""
    if len(labelled) < 20:
        raise ValueError(f"need at least 20 confirmed appeals to train, have {len(labelled)}")
    active_row = ensure_active(session, backend, cache_dir)
    active = CategoryModel.from_bytes(active_row.blob)
    emb = embedder(backend)
    vectors = emb.embed([appeal_text(lab.item.title, lab.item.text) for lab in labelled])
    fit_idx, hold_idx = split(labelled)
    candidate, fitted = fit(zero_shot(category_texts(session), backend, cache_dir), catalogue,
                            [labelled[i] for i in fit_idx], vectors[fit_idx])
    hold = [labelled[i] for i in hold_idx]
    hold_vectors = vectors[hold_idx] if hold_idx else np.zeros((0, vectors.shape[1]))
    cand_out = outcome(judge(candidate, catalogue, [h.item for h in hold], hold_vectors), hold)
    act_out = (outcome(judge(active, catalogue, [h.item for h in hold], hold_vectors), hold)
               if active.embedder == backend else Outcome(0, len(hold), 0, 0, 0, len(hold)))
    metrics = dict(kind="calibrated", fit=fitted.__dict__, holdout=cand_out.__dict__,
                   compared_with=active_row.label, compared_holdout=act_out.__dict__)
    row = _save(session, candidate, status="candidate", trained_on=len(labelled), metrics=metrics)
    better = cand_out.score() > act_out.score()
    if better and promote_if_better:
        promote(session, stored_id(row))
    return TrainReport(row, active_row.label, cand_out, act_out, better and promote_if_better)


def promote(session: Session, version_id: int) -> ClassifierVersion:
    row = session.get(ClassifierVersion, version_id)
    if row is None:
        raise LookupError(f"no model version v{version_id}")
    session.execute(update(ClassifierVersion).where(col(ClassifierVersion.status) == "active")
                    .values(status="retired"))
    row.status, row.promoted_at = "active", utcnow()
    session.add(row)
    session.flush()
    return row


def rollback(session: Session) -> ClassifierVersion:
    """Back to the version that was active before the current one."""
    current = session.exec(select(ClassifierVersion).where(col(ClassifierVersion.status) == "active")).first()
    if current is None:
        raise LookupError("no active model version to roll back from")
    previous = session.exec(select(ClassifierVersion).where(
        col(ClassifierVersion.promoted_at).is_not(None), col(ClassifierVersion.id) != current.id,
        col(ClassifierVersion.promoted_at) <= current.promoted_at)
        .order_by(col(ClassifierVersion.promoted_at).desc())).first()
    if previous is None:
        raise LookupError(f"{current.label} is the first promoted version; nothing to roll back to")
    current.status = "retired"
    current.promoted_at = None  # so a second rollback goes one further back
    session.add(current)
    session.flush()
    previous.status = "active"
    session.add(previous)
    session.flush()
    return previous


def versions(session: Session) -> list[ClassifierVersion]:
    return list(session.exec(select(ClassifierVersion).order_by(col(ClassifierVersion.id))))
