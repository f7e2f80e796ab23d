"""Duplicates (并单 candidates): open appeals in the same district and time window, ranked by text
similarity and confirmed by a normalised place match. Never merged automatically: a dispatcher
confirms with one click (the workbench `merge` action).

Places are compared as normalised names: a road, a numbered building or compound, a landmark. Chinese
names are also spelled in pinyin, so 居庸关路12号 and "No. 12 Juyongguan Road" are one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlmodel import Session, col, select

from appealflow.models.appeal import Appeal
from appealflow.models.columns import stored_id
from appealflow.models.enums import AppealStatus

OPEN = (AppealStatus.received, AppealStatus.triage, AppealStatus.dispatched, AppealStatus.accepted,
        AppealStatus.in_progress, AppealStatus.replied)
WINDOW = timedelta(days=7)

# A place is a proper name followed by what kind of place it is.
_ZH_PLACE = re.compile(r"([\u4e00-\u9fff]{2,6}?)(中路|东路|西路|南路|北路|大桥|路|街|大道|道|巷|桥|码头|公园|广场|"
                       r"小区|花园|社区|市场|商场|夜市|景区|新区|街道|工业园|园区|学校|医院|村)")
_ZH_NUMBER = re.compile(r"(\d+)\s*(号楼|号院|号|栋|楼)")
_EN_PLACE = re.compile(r"\b([a-z][a-z']+(?:\s[a-z][a-z']+)?)\s(road|street|avenue|lane|bridge|park|square|"
                       r"compound|community|market|mall|pier|village|river)\b")
_EN_NUMBER = re.compile(r"\b(?:no\.?\s*|building\s|number\s)(\d+)\b")
_GENERIC = {"this", "the", "our", "that", "a", "every", "main", "big", "new", "old", "small", "local", "next",
            "马路", "这条", "那条", "附近", "小区门", "这个", "那个", "我们", "旁边", "对面", "门口"}


def _pinyin(text: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(text))


def places(text: str) -> set[str]:
    """Normalised place names in a text: pinyin of the proper name, without the kind of place, so a
    road written in Chinese and in English agree; plus building numbers."""
    t = text.lower().replace("'", "")
    found = set()
    for name, _kind in _ZH_PLACE.findall(t):
        name = name.lstrip("在的了和到是")
        if len(name) >= 2 and name not in _GENERIC:
            found.add(_pinyin(name))
    for name, _kind in _EN_PLACE.findall(t):
        words = [w for w in name.split() if w not in _GENERIC]
        if words:
            found.add("".join(words[-1:]))
            found.add("".join(words))
    for number, _kind in _ZH_NUMBER.findall(t):
        found.add(f"#{number}")
    for number in _EN_NUMBER.findall(t):
        found.add(f"#{number}")
    return found


@dataclass(frozen=True)
class Candidate:
    appeal_id: int
    code: str
    similarity: float
    shared_places: tuple[str, ...]
    why: str


SIMILAR = 0.86  # cosine of e5 query vectors: same matter in other words
VERY_SIMILAR = 0.93  # so close that no place need be named twice


def _named(shared: set[str]) -> set[str]:
    """Named places, without bare building numbers."""
    return {p for p in shared if not p.startswith("#")}


def is_duplicate(similarity: float, shared: set[str], same_street: bool) -> bool:
    """Text alone is not enough: one complaint about noise reads like any other. A named place shared
    by both, or the same street with near-identical text, confirms it."""
    if _named(shared) and similarity >= SIMILAR - 0.03:
        return True
    return similarity >= VERY_SIMILAR and same_street


@dataclass(frozen=True)
class Probe:
    """What is compared of one appeal."""

    key: int
    district: str | None
    street: str | None
    at: datetime
    text: str


def pairs(probes: list[Probe], vectors: np.ndarray, window: timedelta = WINDOW) -> list[tuple[int, int, float]]:
    """Every pair judged the same matter: same district, within the window, similar and placed alike."""
    sims = vectors @ vectors.T
    spots = [places(p.text) for p in probes]
    out = []
    for i, a in enumerate(probes):
        for j in range(i + 1, len(probes)):
            b = probes[j]
            if a.district != b.district or a.district is None or abs(a.at - b.at) > window:
                continue
            if is_duplicate(float(sims[i, j]), spots[i] & spots[j], a.street == b.street and a.street is not None):
                out.append((a.key, b.key, float(sims[i, j])))
    return out


def candidates_for(session: Session, appeal: Appeal, embed, *, limit: int = 5,
                   window: timedelta = WINDOW) -> list[Candidate]:
    """Open appeals that are probably the same matter as `appeal`, most similar first."""
    if not appeal.district:
        return []
    others = session.exec(select(Appeal).where(
        col(Appeal.district) == appeal.district, col(Appeal.id) != appeal.id, col(Appeal.status).in_(OPEN),
        col(Appeal.parent_id).is_(None), col(Appeal.received_at) >= appeal.received_at - window,
        col(Appeal.received_at) <= appeal.received_at + window)
        .order_by(col(Appeal.received_at).desc()).limit(200)).all()
    text = f"{appeal.title}。{appeal.text}"
    mine = places(text)
    # Only an appeal naming a place of ours, or on our street, can pass `is_duplicate`: embed just those.
    near = []
    for other in others:
        other_text = f"{other.title}。{other.text}"
        shared = mine & places(other_text)
        same_street = other.street == appeal.street and appeal.street is not None
        if _named(shared) or same_street:
            near.append((other, other_text, shared, same_street))
    near = near[:50]
    if not near:
        return []
    vectors = embed([text, *(t for _, t, _, _ in near)])
    sims = vectors[1:] @ vectors[0]
    found = []
    for (other, _, shared, same_street), sim in zip(near, sims, strict=True):
        if is_duplicate(float(sim), shared, same_street):
            where = ", ".join(sorted(shared)) or "the same street"
            found.append(Candidate(stored_id(other), other.code, round(float(sim), 3), tuple(sorted(shared)),
                                   f"probably the same matter as {other.code} / 疑似与 {other.code} 为同一事项: "
                                   f"text {sim:.0%} alike, same place ({where})"))
    return sorted(found, key=lambda c: -c.similarity)[:limit]
