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

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np
from sqlmodel import Session, col, select

from appealflow.models.appeal import Appeal
from appealflow.models.columns import stored_id
from appealflow.models.enums import AppealStatus

OPEN = (AppealStatus.received, AppealStatus.triage, AppealStatus.dispatched, AppealStatus.accepted,
        AppealStatus.in_progress, AppealStatus.replied)
WINDOW = timedelta(days=7)

# Kinds of place, with what they are called in Chinese and in English (longer words first). A road
# holds many matters; a site or a numbered address holds one; an area is as broad as a street office.
_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "area": (("街道", "新区", "开发区", "镇", "乡"), ("district", "subdistrict", "town", "township")),
    "road": (("中路", "东路", "西路", "南路", "北路", "大道", "大街", "路", "街", "巷"),
             ("road", "street", "avenue", "lane")),
    "compound": (("小区", "花园", "社区", "家园", "公寓", "大厦", "新村", "村", "苑"),
                 ("compound", "community", "estate", "gardens", "garden", "apartments", "residence", "village")),
    "bridge": (("大桥", "桥"), ("bridge",)),
    "park": (("公园",), ("park",)),
    "square": (("广场",), ("square", "plaza")),
    "market": (("农贸市场", "菜市场", "市场", "商场", "夜市", "早市", "商城"), ("market", "mall")),
    "pier": (("码头",), ("pier", "wharf")),
    "scenic": (("景区",), ("scenic area",)),
    "school": (("幼儿园", "小学", "中学", "学校"), ("school", "kindergarten")),
    "hospital": (("医院",), ("hospital",)),
    "industrial": (("工业园区", "工业园", "园区"), ("industrial park",)),
    "station": (("公交站", "车站"), ("bus stop", "station")),
}
_ZH_KIND = {word: kind for kind, (zh, _) in _KINDS.items() for word in zh}
_EN_KIND = {word: kind for kind, (_, en) in _KINDS.items() for word in en}
_ZH_KIND_WORD = re.compile("|".join(sorted(_ZH_KIND, key=len, reverse=True)))
_ZH_NUMBER_AFTER_ROAD = re.compile(r"\s*(\d+)\s*号")
_ZH_BUILDING = re.compile(r"(\d+)\s*(?:号楼|栋|幢|号院)")
_EN_PLACE = re.compile(r"((?:No\.?\s*(\d+)\s+)?(?:[A-Z][\w'-]*\s+){1,3})(?i:(" +
                       "|".join(sorted(_EN_KIND, key=len, reverse=True)) + r"))\b")
_EN_BUILDING = re.compile(r"\b(?i:building|block|bldg\.?)\s*(?:no\.?\s*)?(\d+)\b")
# Words that say which, not what: never a place's name.
_ZH_VAGUE = re.compile(r"某|这|那|哪|我|你|他|她|们|个|条|段|整|全|每|各|一些|附近|旁边|对面|门口|周边|周围|"
                       r"楼下|楼上|里面|外面|[东西南北这那前后左右]边|[前后]面")
# Where a Chinese name starts: after a little word like these, or punctuation, or another place.
_ZH_BOUNDARY = set("在的了和与及到是从往把被给我你他她它们那这个")
_EN_STOP = {"the", "a", "an", "our", "my", "this", "that", "these", "every", "each", "some", "main", "big", "small",
            "new", "old", "local", "next", "near", "by", "at", "on", "in", "of", "to", "from", "for", "along",
            "opposite", "behind", "outside", "inside", "across", "around", "is", "are", "no", "middle", "east",
            "west", "north", "south", "upper", "lower", "there", "and", "or", "cars", "car"}
# English words for what a Chinese name ends with: "Licun River" is 李村河.
_EN_NAME_WORDS = {"river": "he", "lake": "hu", "mountain": "shan", "hill": "shan", "island": "dao", "bay": "wan"}


@lru_cache(maxsize=4096)
def _pinyin(text: str) -> tuple[str, ...]:
    from pypinyin import lazy_pinyin

    return tuple(lazy_pinyin(text))


def _zh_name(raw: str, areas: tuple[str, ...]) -> str | None:
    """The proper part of a Chinese place name in pinyin, without a leading area (薛家岛安子 → anzi)."""
    if len(raw) < 2 or _ZH_VAGUE.search(raw) or "路" in raw or "街" in raw:
        return None
    syllables = _pinyin(raw)
    for area in areas:
        for n in range(1, len(syllables) - 1):
            if "".join(syllables[:n]) == area:
                syllables = syllables[n:]
                break
    # Longer than four characters is a clause, not a name (工地出来沿路).
    return "".join(syllables) if len(syllables) <= 4 else None


def _en_name(words: str) -> str | None:
    kept: list[str] = []
    for word in words.split():
        w = word.lower().replace("'", "").strip(".-")
        if w in _EN_STOP:
            kept = []  # a name follows the last little word: "the small square on Fuxin Road"
            continue
        kept.append(_EN_NAME_WORDS.get(w, w))
    return "".join(kept) or None


def places(text: str, areas: Iterable[str | None] = ()) -> set[str]:
    """The places a text names, normalised: `road:juyongguan`, `addr:juyongguan#12`, `compound:cuihu`,
    `bldg#8`, `area:liuting`. `areas` are the appeal's district and street codes (pinyin): a name
    starting with one is shortened by it, a name equal to one is only an area."""
    known = tuple(sorted({a.lower() for a in areas if a}, key=len, reverse=True))
    found: set[str] = set()

    def add(kind: str, name: str | None, number: str | None = None) -> None:
        if not name:
            return
        if kind == "road" and name in known:
            kind = "area-road"  # 辽宁路 in 辽宁路街道: the whole street office's area
        found.add(f"{kind}:{name}")
        if number and kind == "road":
            found.add(f"addr:{name}#{number}")

    last_end, last_road = 0, None
    for m in _ZH_KIND_WORD.finditer(text):
        start = m.start()
        while start > last_end and "\u4e00" <= text[start - 1] <= "\u9fff" and text[start - 1] not in _ZH_BOUNDARY:
            start -= 1
        raw, kind = text[start:m.start()], _ZH_KIND[m.group()]
        name = _zh_name(raw, known)
        if not raw and m.start() == last_end and last_road and kind not in ("road", "area"):
            name = last_road  # 虎山路公园: a park named by its road
        number = None
        if kind == "road" and name:
            after = _ZH_NUMBER_AFTER_ROAD.match(text, m.end())
            number = after.group(1) if after else None
        if name:
            add(kind, name, number)
            last_end, last_road = m.end(), (name if kind == "road" else None)
    for m in _EN_PLACE.finditer(text):
        words, number, word = m.group(1), m.group(2), m.group(3).lower()
        if number:
            words = words[words.index(number) + len(number):]
        parts = words.split()
        kind = _EN_KIND[word]
        # "Hushan Road park": a site named by its road
        if len(parts) > 1 and parts[-1].lower() in _EN_KIND and _EN_KIND[parts[-1].lower()] == "road":
            road = _en_name(" ".join(parts[:-1]))
            add("road", road)
            add(kind, road)
            continue
        add(kind, _en_name(words), number)
    for number in _ZH_BUILDING.findall(text):
        found.add(f"bldg#{number}")
    for number in _EN_BUILDING.findall(text):
        found.add(f"bldg#{number}")
    return {p for p in found if not p.startswith("area")}


# Sites as wide as a road: many matters happen in one scenic area or industrial park.
_BROAD = ("scenic:", "industrial:")
SPECIFIC = "specific"  # the same address, named site, or crossing of two roads
BUILDING = "building"  # the same building number, nothing else in common
ROAD = "road"  # the same road (or area-sized road), nothing more specific
NONE = "none"
CONFLICT = "conflict"  # two different addresses, buildings or sites of one kind


def _by(keys: set[str], prefix: str) -> set[str]:
    return {k for k in keys if k.startswith(prefix)}


def relation(a: set[str], b: set[str]) -> tuple[str, set[str]]:
    """How the places of two appeals relate, and what they share."""
    shared = a & b
    for road in _by(shared, "road:") | _by(shared, "area-road:"):
        name = road.split(":", 1)[1]
        na, nb = _by(a, f"addr:{name}#"), _by(b, f"addr:{name}#")
        if na and nb and not na & nb:
            return CONFLICT, shared
    ba, bb = _by(a, "bldg#"), _by(b, "bldg#")
    if ba and bb and not ba & bb:
        return CONFLICT, shared
    ca, cb = _by(a, "compound:"), _by(b, "compound:")
    if ca and cb and not ca & cb:
        return CONFLICT, shared
    sites = {k for k in shared if not k.startswith(("road:", "area-road:", "bldg#", *_BROAD))}
    roads = _by(shared, "road:") | _by(shared, "area-road:") | {k for k in shared if k.startswith(_BROAD)}
    if sites or len(roads) >= 2:
        return SPECIFIC, shared
    if _by(shared, "bldg#"):
        return BUILDING, shared
    if roads:
        return ROAD, shared
    return NONE, shared


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
PLACE_WEIGHT = {SPECIFIC: 0.05, BUILDING: 0.02, ROAD: 0.0, NONE: -1.0, CONFLICT: -1.0}
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
    return (f"疑似与 {code} 为同一事项 / probably the same matter as {code}: text {similarity:.0%} alike, "
            f"{problem_words}, same {place} place ({where})")


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
    if not mine:
        return []
    near = []
    for other in others:
        if other.district != appeal.district:
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
                    window: timedelta = WINDOW, limit: int = 3) -> dict[int, list[Candidate]]:
    """For each appeal being dispatched, the open appeals (stored, or earlier in this batch) that are
    probably the same matter, by appeal id. The batch's vectors are reused; others embedded once."""
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
