"""The policy Q&A base: import, and search by meaning checked against words.

Operators answer a consultation on the spot from it, citizens see suggestions while typing. A text
may be a short question or a whole appeal with the question somewhere inside, so the meaning side
takes each entry's best match with any sentence of it, measured against how the text resembles every
entry (a long text resembles everything a little). The words side asks how much of an entry's own
question the text uses (Chinese by character pairs, as it has no spaces). An entry is offered only
when both agree it stands out, else nothing is, and the caller hands over to a person.
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
    """English words, Chinese characters and character pairs (Chinese has no spaces)."""
    t = text.lower()
    out = [w for w in _WORD.findall(t) if w not in _STOP]
    for run in _CJK.findall(t):
        out += [c for c in run if c not in _STOP]
        out += [run[i:i + 2] for i in range(len(run) - 1)]
    return out


def terms(text: str) -> set[str]:
    """The tokens that name something: words and character pairs (a single character says little)."""
    return {t for t in tokens(text) if len(t) >= 2}


_SENTENCE = re.compile(r"(?<=[。？！?!；;])|(?<=[.])\s+")
_CLAUSE = re.compile(r"[，,、。？！?!；;]")
MAX_PIECES = 16


def pieces(text: str) -> list[str]:
    """The whole text, its sentences, and runs of three clauses. A citizen's question inside a long
    appeal is usually one sentence; embedded whole, the rest of the story blurs it."""
    out = [text]
    sentences = [p.strip() for p in _SENTENCE.split(text) if len(p.strip()) >= 4]
    if len(sentences) > 1:
        out += sentences
    clauses = [c.strip() for c in _CLAUSE.split(text) if c.strip()]
    if len(clauses) > 3:
        out += ["，".join(clauses[i:i + 3]) for i in range(len(clauses) - 2)]
    return list(dict.fromkeys(out))[:MAX_PIECES]


def is_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


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


def entry_text(row: PolicyAnswer) -> str:
    return f"{row.question} {row.answer[:200]}"


@dataclass
class Index:
    """The entries valid today, their vectors, and what the scores are measured against."""

    rows: list[PolicyAnswer]
    vectors: np.ndarray
    question_terms: list[set[str]]
    idf: dict[str, float]
    # Vectors of a fixed background (the sample base) beside the entries: a base of a handful of
    # entries has no spread of its own to measure a query's similarities against.
    background: np.ndarray
    chinese: np.ndarray  # per entry, then per background row: the language of its question

    @classmethod
    def build(cls, rows: list[PolicyAnswer], vectors: np.ndarray, background: np.ndarray,
              background_chinese: list[bool]) -> Index:
        docs = [terms(f"{r.question} {r.answer}") for r in rows]
        df: dict[str, int] = {}
        for doc in docs:
            for t in doc:
                df[t] = df.get(t, 0) + 1
        n = len(rows)
        idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        chinese = np.array([is_chinese(r.question) for r in rows] + list(background_chinese), dtype=bool)
        return cls(rows, vectors, [terms(r.question) for r in rows], idf, background, chinese)

    def coverage(self, query: str) -> np.ndarray:
        """Per entry, the share of its question's terms (weighted by rarity) that the query uses."""
        asked = terms(query)
        return np.array([sum(self.idf.get(t, 0.0) for t in q & asked) / (sum(self.idf.get(t, 0.0) for t in q) or 1.0)
                         for q in self.question_terms])

    def meaning(self, piece_vectors: np.ndarray) -> np.ndarray:
        """Per entry, how far its best cosine with any piece of the query stands out. Embeddings
        put every text of one language closer to every other, so each language is measured from its
        own mean, and the spread is the query's own over the entries and the background together."""
        every = np.vstack([self.vectors, self.background]) if len(self.background) else self.vectors
        best = (piece_vectors @ every.T).max(axis=0)
        centred = best.copy()
        for language in (self.chinese, ~self.chinese):
            if language.any():
                centred[language] -= best[language].mean()
        spread = centred.std() or 1.0
        return centred[:len(self.rows)] / spread


_index: dict[str, tuple[tuple, Index]] = {}
_background: dict[str, tuple[np.ndarray, list[bool]]] = {}
_lock = threading.Lock()


def background(embed) -> tuple[np.ndarray, list[bool]]:
    """The sample base's vectors under this backend, embedded once per process."""
    # The backend behind the bound `embed` (its name: e5, chargram) tells whose vectors these are.
    key = str(getattr(getattr(embed, "__self__", None), "name", id(embed)))
    with _lock:
        if key in _background:
            return _background[key]
    sample = parse(SAMPLE_QA_BASE.read_text(encoding="utf-8"), "json")
    made = (np.asarray(embed([f"{e['question']} {e['answer'][:200]}" for e in sample]), dtype=np.float32),
            [is_chinese(e["question"]) for e in sample])
    with _lock:
        _background[key] = made
    return made


def _load(session: Session, today: date, embed) -> Index:
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
    back, back_chinese = background(embed)
    stored = [np.frombuffer(r.vector or b"", dtype=np.float32) for r in rows]
    # Vectors of another backend than the one asking (a base imported before a switch): embedded again.
    if not rows:
        vectors = np.zeros((0, back.shape[1]), dtype=np.float32)
    elif all(len(v) == back.shape[1] for v in stored):
        vectors = np.stack(stored)
    else:
        vectors = np.asarray(embed([entry_text(r) for r in rows]), dtype=np.float32)
    index = Index.build(rows, vectors, back, back_chinese)
    with _lock:
        _index[key] = (stamp, index)
    return index


# When an entry answers at all, measured on tests/eval/qa_queries.jsonl (short questions, appeal-length
# texts, and off-topic complaints whose nearest entries share a word or two): an entry is shown when
# meaning and words together stand out (SHOWN), and its question's own terms appear in the text unless
# meaning alone is beyond doubt (SURE). Off-topic texts' best entries reached 2.6 on meaning alone
# (an English complaint against the few English entries) with no shared term.
WORDS_WEIGHT = 1.0
SHOWN = 2.8
SURE = 3.7


def search(session: Session, query: str, embed, *, today: date, limit: int = 3) -> list[Hit]:
    """The best entries for a question, at most `limit`; empty when nothing is close enough."""
    index = _load(session, today, embed)
    if not index.rows or not query.strip():
        return []
    return rank(index, query, np.asarray(embed(pieces(query)), dtype=np.float32), limit)


def rank(index: Index, query: str, piece_vectors: np.ndarray, limit: int) -> list[Hit]:
    meaning = index.meaning(piece_vectors)
    words = index.coverage(query)
    score = meaning + WORDS_WEIGHT * words
    shown = (score >= SHOWN) & ((words > 0) | (meaning >= SURE))
    hits: list[Hit] = []
    for i in np.argsort(-score):
        if len(hits) == limit:
            break
        if shown[i]:
            r = index.rows[i]
            hits.append(Hit(r.id, r.question, r.answer, r.theme, r.source, round(float(score[i]), 3),
                            r.valid_from, r.valid_to))
    return hits
