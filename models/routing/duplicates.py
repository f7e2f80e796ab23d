"""Duplicates (并单 candidates): open appeals that are probably the same matter. Never merged
automatically: a dispatcher confirms with one click (the workbench `merge` action).

Two appeals are one matter when they are in the same district, close in time, at the same place and
about the same kind of problem. Each of these is evidence, and so is its absence:

- place: a numbered address (居庸关路12号, "No. 12 Juyongguan Road"), a named site (翠湖小区, the
  Cuihu compound; 沙子口码头) or a crossing of two roads names one spot; a road alone names many
  spots; a street office's area (流亭街道) or a word like 某小区 names none. Two different numbers on
  one road, or two differently named compounds, are two places, whatever the text says.
- problem: the category routing gave each (the same one, one among the other's top readings, or
  the same department), and the e5 cosine of the two texts.

The evidence is summed into one score (`score`) and compared with one threshold (`THRESHOLD`), so
`appealflow model evaluate` can sweep it and show what precision each recall costs. Chinese names
are compared in pinyin, so 居庸关路 and "Juyongguan Road" are one road.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlmodel import Session, col, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.appeals.nearby import distance_m
from appealflow.models.routing.places import BUILDING, CONFLICT, NONE, ROAD, SPECIFIC, places, relation
from appealflow.models.routing.vectors import stored_vectors
from appealflow.models.storage.columns import stored_id

OPEN = (AppealStatus.received, AppealStatus.triage, AppealStatus.dispatched, AppealStatus.accepted,
        AppealStatus.in_progress, AppealStatus.replied)
WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Problem:
    """What routing made of an appeal: its category, the other readings it weighed, its department."""

    category: str | None
    readings: tuple[str, ...] = ()
    department: str | None = None


SAME = "same"  # one category
NEAR = "near"  # one is among the other's readings, or one department
DIFFER = "differ"
UNKNOWN = "unknown"


def agreement(a: Problem | None, b: Problem | None) -> str:
    if a is None or b is None or a.category is None or b.category is None:
        return UNKNOWN
    if a.category == b.category:
        return SAME
    if a.category in b.readings or b.category in a.readings or (a.department and a.department == b.department):
        return NEAR
    return DIFFER


# The evidence, as additions to the texts' cosine; `THRESHOLD` decides. A road shared is no evidence
# by itself (a road holds many matters), the same problem on it is; two places are never one matter.
# e5 puts a Chinese text and its English telling further apart than two Chinese tellings: ~0.85-0.89
# against ~0.93-0.97 for one matter, so a pair across languages is given back what translation costs.
# Two positions a phone gave (or an app sent) within SAME_SPOT_M of each other are one spot, better
# evidence than a place both texts name: two people at one broken lamp word it differently. Positions
# more than FAR_M apart are two matters, whatever the texts say.
HERE = "position"
SAME_SPOT_M, FAR_M = 60.0, 500.0
PLACE_WEIGHT = {HERE: 0.08, SPECIFIC: 0.05, BUILDING: 0.02, ROAD: 0.0, NONE: -1.0, CONFLICT: -1.0}
PROBLEM_WEIGHT = {SAME: 0.03, NEAR: -0.01, UNKNOWN: -0.02, DIFFER: -0.08}
ACROSS_LANGUAGES = 0.04
THRESHOLD = 0.92


def _chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def score(similarity: float, place: str, problem: str, across_languages: bool = False) -> float:
    return similarity + PLACE_WEIGHT[place] + PROBLEM_WEIGHT[problem] + (ACROSS_LANGUAGES if across_languages else 0)


@dataclass(frozen=True)
class Probe:
    """What is compared of one appeal."""

    key: int
    district: str | None
    street: str | None
    at: datetime
    text: str
    problem: Problem | None = None

    def places(self) -> set[str]:
        return places(self.text, (self.district, self.street))


@dataclass(frozen=True)
class Judged:
    a: int
    b: int
    similarity: float
    place: str
    problem: str
    shared: tuple[str, ...]
    across_languages: bool = False

    @property
    def score(self) -> float:
        return score(self.similarity, self.place, self.problem, self.across_languages)


def judged_pairs(probes: Sequence[Probe], vectors: np.ndarray, window: timedelta = WINDOW) -> list[Judged]:
    """Every pair in one district and window that could be one matter, with its evidence and score."""
    sims = vectors @ vectors.T
    spots = [p.places() for p in probes]
    out = []
    for i, a in enumerate(probes):
        for j in range(i + 1, len(probes)):
            b = probes[j]
            if a.district != b.district or a.district is None or abs(a.at - b.at) > window:
                continue
            place, shared = relation(spots[i], spots[j])
            if place in (NONE, CONFLICT):
                continue
            out.append(Judged(a.key, b.key, float(sims[i, j]), place, agreement(a.problem, b.problem),
                              tuple(sorted(shared)), _chinese(a.text) != _chinese(b.text)))
    return out


def pairs(probes: Sequence[Probe], vectors: np.ndarray, window: timedelta = WINDOW,
          threshold: float = THRESHOLD) -> list[tuple[int, int, float]]:
    """Every pair judged the same matter."""
    return [(j.a, j.b, j.similarity) for j in judged_pairs(probes, vectors, window) if j.score >= threshold]


@dataclass(frozen=True)
class Candidate:
    appeal_id: int
    code: str
    similarity: float
    shared_places: tuple[str, ...]
    why: str
    department: str | None = None
    category: str | None = None
    score: float = 0.0


def _why(code: str, similarity: float, place: str, problem: str, shared: Iterable[str]) -> str:
    where = ", ".join(sorted(shared))
    problem_words = {SAME: "same category", NEAR: "related category", UNKNOWN: "category unknown",
                     DIFFER: "different category"}[problem]
    spot = f"pinned {where} apart" if place == HERE else f"same {place} place ({where})"
    return (f"疑似与 {code} 为同一事项 / probably the same matter as {code}: text {similarity:.0%} alike, "
            f"{problem_words}, {spot}")


def apart_m(a: Appeal, b: Appeal) -> float | None:
    """How far apart two appeals' positions are, when both have one."""
    if a.latitude is None or a.longitude is None or b.latitude is None or b.longitude is None:
        return None
    return distance_m(a.latitude, a.longitude, b.latitude, b.longitude)


def problem_of(appeal: Appeal) -> Problem | None:
    """What routing recorded for an open appeal."""
    return Problem(appeal.category_code, (), appeal.department_code) if appeal.category_code else None


def _open_near(session: Session, appeal: Appeal, window: timedelta) -> list[Appeal]:
    return list(session.exec(select(Appeal).where(
        col(Appeal.district) == appeal.district, col(Appeal.id) != appeal.id, col(Appeal.status).in_(OPEN),
        col(Appeal.parent_id).is_(None), col(Appeal.received_at) >= appeal.received_at - window,
        col(Appeal.received_at) <= appeal.received_at + window)
        .order_by(col(Appeal.received_at).desc()).limit(200)).all())


def appeal_text(appeal: Appeal) -> str:
    return f"{appeal.title}。{appeal.text}"


def candidates_among(appeal: Appeal, problem: Problem | None, others: Sequence[Appeal],
                     embed: Callable[[list[str]], np.ndarray], *, limit: int = 5, threshold: float = THRESHOLD,
                     problems: dict[int, Problem | None] | None = None,
                     vectors: dict[int, np.ndarray] | None = None) -> list[Candidate]:
    """Of `others`, those probably the same matter as `appeal`, best first. Only appeals sharing a
    place with it are embedded (at most 50), so this stays cheap; `vectors` (by appeal id) are
    reused, and what is embedded here is added to them."""
    mine = places(appeal_text(appeal), (appeal.district, appeal.street))
    if not mine and appeal.latitude is None:
        return []
    near = []
    for other in others:
        if other.district != appeal.district:
            continue
        metres = apart_m(appeal, other)
        if metres is not None and metres > FAR_M:
            continue
        if metres is not None and metres <= SAME_SPOT_M:
            near.append((other, HERE, {f"{round(metres)} m"}))
            continue
        place, shared = relation(mine, places(appeal_text(other), (other.district, other.street)))
        if place not in (NONE, CONFLICT):
            near.append((other, place, shared))
    near = near[:50]
    if not near:
        return []
    known = vectors if vectors is not None else {}
    missing = [a for a in [appeal, *(o for o, _, _ in near)] if stored_id(a) not in known]
    if missing:
        known.update(zip([stored_id(a) for a in missing], embed([appeal_text(a) for a in missing]), strict=True))
    mine_vector, chinese = known[stored_id(appeal)], _chinese(appeal_text(appeal))
    found = []
    for other, place, shared in near:
        sim = float(np.dot(mine_vector, known[stored_id(other)]))
        theirs = problems[stored_id(other)] if problems and stored_id(other) in problems else problem_of(other)
        agreed = agreement(problem, theirs)
        s = score(sim, place, agreed, chinese != _chinese(appeal_text(other)))
        if s >= threshold:
            found.append(Candidate(stored_id(other), other.code, round(sim, 3), tuple(sorted(shared)),
                                   _why(other.code, sim, place, agreed, shared), other.department_code,
                                   other.category_code, round(s, 3)))
    return sorted(found, key=lambda c: -c.score)[:limit]


def candidates_for(session: Session, appeal: Appeal, embed, *, limit: int = 5,
                   window: timedelta = WINDOW) -> list[Candidate]:
    """Open appeals that are probably the same matter as `appeal`, most likely first (for the
    dispatcher's view, where the appeal's category is what routing recorded)."""
    if not appeal.district:
        return []
    return candidates_among(appeal, problem_of(appeal), _open_near(session, appeal, window), embed,
                            limit=limit)


def twins_for_batch(session: Session, appeals: Sequence[Appeal], problems: dict[int, Problem | None],
                    vectors: dict[int, np.ndarray], embed: Callable[[list[str]], np.ndarray], *,
                    window: timedelta = WINDOW, limit: int = 3,
                    embedder: str | None = None) -> dict[int, list[Candidate]]:
    """For each appeal being dispatched, the open appeals (stored, or earlier in this batch) that are
    probably the same matter, by appeal id. The batch's vectors are reused, and the stored appeals'
    kept ones (`embedder`'s, models/routing/vectors.py); only the rest are embedded, once."""
    found: dict[int, list[Candidate]] = {}
    batch_ids = [stored_id(a) for a in appeals]
    by_district: dict[str, list[Appeal]] = {}
    for appeal in appeals:
        if appeal.district:
            by_district.setdefault(appeal.district, []).append(appeal)
    for district, batch in by_district.items():
        oldest = min(a.received_at for a in batch)
        newest = max(a.received_at for a in batch)
        stored = list(session.exec(select(Appeal).where(
            col(Appeal.district) == district, col(Appeal.status).in_(OPEN), col(Appeal.id).not_in(batch_ids),
            col(Appeal.parent_id).is_(None), col(Appeal.received_at) >= oldest - window,
            col(Appeal.received_at) <= newest + window)
            .order_by(col(Appeal.received_at).desc()).limit(500)).all())
        if embedder is not None:
            vectors.update(stored_vectors(session, [stored_id(a) for a in stored if stored_id(a) not in vectors],
                                          embedder))
        for n, appeal in enumerate(batch):
            others = [a for a in [*stored, *batch[:n][::-1]] if abs(a.received_at - appeal.received_at) <= window]
            candidates = candidates_among(appeal, problems.get(stored_id(appeal)), others, embed, limit=limit,
                                          problems=problems, vectors=vectors)
            if candidates:
                found[stored_id(appeal)] = candidates
    return found


def twin_to_follow(candidates: Sequence[Candidate]) -> Candidate | None:
    """The most likely twin that already has a department: one matter goes to one department."""
    return next((c for c in candidates if c.department), None)


def follow_note(twin: Candidate, own_department: str | None) -> str:
    """The routing reason's words (Chinese first) when a probable twin decides, or is overruled."""
    same = f"疑似与 {twin.code} 为同一事项 / probably the same matter as {twin.code}"
    if own_department is None:
        return f"{same}: routed as it was, to {twin.department} (routing alone was unsure)"
    if own_department == twin.department:
        return f"{same}, which went to {twin.department} too"
    return (f"{same}, which went to {twin.department}, but routing says {own_department}: "
            f"for the dispatcher, {twin.department} first")
