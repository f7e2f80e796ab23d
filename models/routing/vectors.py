"""Each appeal's embedding, kept from the dispatch that made it: duplicate detection compares a new
appeal with the open ones near it, and a replay of routing reads them, without embedding any text a
second time. Half-precision (768 bytes for e5-small's 384 dimensions): cosines move in the fourth
decimal, far below what any threshold here tells apart. Tied to the embedder that made it: a vector
of one model means nothing to another."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, Session, SQLModel, col, select


class AppealVector(SQLModel, table=True):
    __tablename__ = "appeal_vector"

    appeal_id: int = Field(primary_key=True, foreign_key="appeal.id")
    embedder: str = Field(max_length=40)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


def stored_vectors(session: Session, appeal_ids: list[int], embedder: str) -> dict[int, np.ndarray]:
    """The kept vectors of these appeals that `embedder` made, by appeal id (as float32)."""
    found: dict[int, np.ndarray] = {}
    for chunk in range(0, len(appeal_ids), 500):
        for appeal_id, blob in session.execute(
                select(col(AppealVector.appeal_id), col(AppealVector.vector)).where(
                    col(AppealVector.appeal_id).in_(appeal_ids[chunk:chunk + 500]),
                    col(AppealVector.embedder) == embedder)):
            found[appeal_id] = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    return found


def keep_vectors(session: Session, vectors: dict[int, Any], embedder: str) -> int:
    """Keep the vectors not kept yet (an appeal dispatched again keeps its first). Returns how many."""
    if not vectors:
        return 0
    have = set(session.execute(select(col(AppealVector.appeal_id))
                               .where(col(AppealVector.appeal_id).in_(list(vectors)))).scalars())
    rows = [AppealVector(appeal_id=appeal_id, embedder=embedder,
                         vector=np.asarray(vector, dtype=np.float16).tobytes())
            for appeal_id, vector in vectors.items() if appeal_id not in have]
    session.add_all(rows)
    session.flush()
    return len(rows)
