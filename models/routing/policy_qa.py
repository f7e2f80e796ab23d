"""The policy Q&A base: import, and search by character BM25 fused with embeddings.

Operators answer a consultation on the spot from it, citizens see suggestions while typing. Chinese
has no spaces, so the lexical side indexes single characters and character pairs; English words are
lower-cased tokens. The two rankings are fused by reciprocal rank, which needs no score calibration
between them; an answer is only offered when the lexical and semantic evidence clear a floor, else
the caller hands over to a person.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from sqlalchemy import Column, LargeBinary, delete, func
from sqlmodel import Field, Session, SQLModel, col, select

from appealflow.models.city.reference import REFERENCE_DIR


class PolicyAnswer(SQLModel, table=True):
    __tablename__ = "policy_answer"

    id: int | None = Field(default=None, primary_key=True)
    question: str = Field(max_length=500)
    answer: str
    theme: str = Field(max_length=60, index=True)
    source: str = Field(max_length=300)
    valid_from: date | None = None
    valid_to: date | None = None
    vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


# A small base written for the demo and the tests (not copied from any official site).
SAMPLE_QA_BASE: Path = REFERENCE_DIR / "policy_qa_sample.json"


class QAImportError(ValueError):
    def __init__(self, row: int, message: str):
        super().__init__(f"entry {row}: {message}")
        self.row = row


FIELDS = ("question", "answer", "theme", "source", "valid_from", "valid_to")


def parse(text: str, fmt: str) -> list[dict]:
    """Entries from CSV (a header row naming the fields) or JSON (a list of objects)."""
    if fmt == "json":
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise QAImportError(0, "a JSON base is a list of entries")
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        raise ValueError(f"unknown format {fmt!r}: csv or json")
    out = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise QAImportError(n, "not an object")
        entry: dict[str, object] = {}
        for name in ("question", "answer", "theme", "source"):
            value = str(row.get(name) or "").strip()
            if not value:
                raise QAImportError(n, f"{name} is missing")
            entry[name] = value
        for name in ("valid_from", "valid_to"):
            value = str(row.get(name) or "").strip()
            try:
                entry[name] = date.fromisoformat(value) if value else None
            except ValueError:
                raise QAImportError(n, f"{name} {value!r} is not a date (YYYY-MM-DD)") from None
        since, until = entry["valid_from"], entry["valid_to"]
        if isinstance(since, date) and isinstance(until, date) and until < since:
            raise QAImportError(n, "valid_to is before valid_from")
        out.append(entry)
    return out


def import_base(session: Session, entries: list[dict], embed, *, replace: bool = True) -> int:
    """Store the entries with their question embeddings; a published base replaces the previous one."""
    if replace:
        session.execute(delete(PolicyAnswer))
    vectors = embed([f"{e['question']} {e['answer'][:200]}" for e in entries]) if entries else []
    session.add_all(PolicyAnswer(**e, vector=np.asarray(v, dtype=np.float32).tobytes())
                    for e, v in zip(entries, vectors, strict=True))
    session.flush()
    return len(entries)


def import_sample_if_empty(session: Session, embed) -> int:
    """The sample base, for a demo that has none yet; entries imported."""
    if session.execute(select(func.count()).select_from(PolicyAnswer)).scalar_one():
        return 0
    return import_base(session, parse(SAMPLE_QA_BASE.read_text(encoding="utf-8"), "json"), embed, replace=False)


_WORD = re.compile(r"[a-z0-9]+")
_CJK = re.compile(r"[\u4e00-\u9fff]+")
_STOP = {"the", "a", "an", "of", "to", "in", "is", "for", "and", "or", "my", "i", "do", "how", "what", "can",
         "我", "的", "了", "吗", "是", "在", "有", "么", "什", "怎", "请", "问"}


def tokens(text: str) -> list[str]:
    t = text.lower()
    out = [w for w in _WORD.findall(t) if w not in _STOP]
    for run in _CJK.findall(t):
        out += [c for c in run if c not in _STOP]
        out += [run[i:i + 2] for i in range(len(run) - 1)]
    return out


class BM25:
    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75):
        self.docs: list[dict[str, int]] = [dict() for _ in docs]
        df: dict[str, int] = {}
        for counts, doc in zip(self.docs, docs, strict=True):
            for tok in doc:
                counts[tok] = counts.get(tok, 0) + 1
            for tok in counts:
                df[tok] = df.get(tok, 0) + 1
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.lengths = [len(d) for d in docs]
        self.avg = sum(self.lengths) / n if n else 1.0
        self.k1, self.b = k1, b

    def scores(self, query: list[str]) -> np.ndarray:
        out = np.zeros(len(self.docs))
        for i, (counts, length) in enumerate(zip(self.docs, self.lengths, strict=True)):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg)
            out[i] = sum(self.idf[t] * counts[t] * (self.k1 + 1) / (counts[t] + norm)
                         for t in set(query) if t in counts)
        return out


@dataclass(frozen=True)
class Hit:
    id: int
    question: str
    answer: str
    theme: str
    source: str
    score: float
    valid_from: date | None = None
    valid_to: date | None = None


@dataclass
class Index:
    rows: list[PolicyAnswer]
    bm25: BM25
    vectors: np.ndarray


_index: dict[str, tuple[tuple, Index]] = {}
_lock = threading.Lock()


def _load(session: Session, today: date) -> Index:
    """Entries valid today, indexed once per process until the base changes."""
    # A replaced base can reuse the same ids on SQLite: the text's length tells one base from another.
    stamp = (tuple(session.execute(select(
        func.count(), func.min(col(PolicyAnswer.id)), func.max(col(PolicyAnswer.id)),
        func.sum(func.length(col(PolicyAnswer.question)) + func.length(col(PolicyAnswer.answer))))).one()), today)
    key = str(session.get_bind().engine.url)
    with _lock:
        cached = _index.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
    rows = [r for r in session.exec(select(PolicyAnswer).order_by(col(PolicyAnswer.id)))
            if (r.valid_from is None or r.valid_from <= today) and (r.valid_to is None or r.valid_to >= today)]
    vectors = (np.stack([np.frombuffer(r.vector or b"", dtype=np.float32) for r in rows])
               if rows and all(r.vector for r in rows) else np.zeros((len(rows), 0)))
    index = Index(rows, BM25([tokens(f"{r.question} {r.question} {r.answer}") for r in rows]), vectors)
    with _lock:
        _index[key] = (stamp, index)
    return index


RRF_K = 10
# When an entry answers at all. Measured on the eval queries plus off-topic ones (weather, fishing, a
# lost cat, shares): right entries scored e5 cosine 0.888-0.96 and BM25 10-59; off-topic questions'
# best entries 0.80-0.868 and up to 12.6 (天气 shares characters with 天然气). Meaning decides; words
# alone only when they match far beyond any stray overlap.
MIN_COSINE = 0.875
MIN_LEXICAL = 30.0


def search(session: Session, query: str, embed, *, today: date, limit: int = 3) -> list[Hit]:
    """The best entries for a question, at most `limit`; empty when nothing is close enough."""
    index = _load(session, today)
    if not index.rows or not query.strip():
        return []
    lexical = index.bm25.scores(tokens(query))
    asked = embed([query])[0]
    # Vectors from another backend than the one asking (the base imported before a switch): words only.
    semantic = (index.vectors @ asked) if index.vectors.shape[1] == asked.shape[0] else np.zeros(len(index.rows))
    return fuse(index.rows, lexical, semantic, limit)


def fuse(rows: list[PolicyAnswer], lexical: np.ndarray, semantic: np.ndarray, limit: int) -> list[Hit]:
    fused = np.zeros(len(rows))
    for scores in (lexical, semantic):
        for rank, i in enumerate(np.argsort(-scores)):
            fused[i] += 1.0 / (RRF_K + rank + 1)
    hits = []
    for i in np.argsort(-fused)[:limit]:
        if semantic[i] < MIN_COSINE and lexical[i] < MIN_LEXICAL:
            continue
        r = rows[i]
        hits.append(Hit(r.id, r.question, r.answer, r.theme, r.source, round(float(fused[i]), 4),
                        r.valid_from, r.valid_to))
    return hits
