"""Places named in an appeal's words, as comparable keys: a numbered address (居庸关路12号, "No. 12
Juyongguan Road"), a named site (翠湖小区; 沙子口码头), a crossing, a building, a road, an area. Chinese
names are compared in pinyin, so 居庸关路 and "Juyongguan Road" are one road; `relation` says how
specific the place two appeals share is, or whether they name two different places."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

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
