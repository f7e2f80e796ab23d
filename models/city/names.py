"""Categories and places by name, as the city's reference files name them: for messages, which are
written where no database session is at hand and must never say a code to a person."""

from __future__ import annotations

from functools import lru_cache

from appealflow.models.city.department import place_name
from appealflow.models.city.reference import REFERENCE_DIR, _flatten, _read

Names = dict[str, tuple[str, str]]


@lru_cache(maxsize=1)
def reference_names() -> tuple[Names, Names, Names]:
    """(categories, districts, streets): code → (Chinese, English)."""
    categories = {c["code"]: (c["name_zh"], c["name_en"]) for c in _flatten(_read("categories", REFERENCE_DIR))}
    districts: Names = {}
    streets: Names = {}
    for d in _read("departments", REFERENCE_DIR):
        if d.get("street"):
            streets.setdefault(d["street"], place_name(d["name_zh"], d["name_en"], street=True))
        elif d.get("district"):
            districts.setdefault(d["district"], place_name(d["name_zh"], d["name_en"], street=False))
    return categories, districts, streets


def category_name(code: str | None) -> dict[str, str] | str:
    """Both languages' names of a category, or "-" for none; an unknown code stays as it is."""
    if not code:
        return "-"
    zh, en = reference_names()[0].get(code, (code, code))
    return {"zh": zh, "en": en}


def location_name(district: str | None, street: str | None, address: str | None) -> dict[str, str] | str:
    """The place in both languages: district and street by name, then the address as typed."""
    _, districts, streets = reference_names()
    parts = [(districts if n == 0 else streets).get(code, (code, code)) if code else None
             for n, code in enumerate((district, street))]
    named = [p[0] for p in parts if p]
    # A street office's Chinese name often starts with its district's (市南区八大关街道): said once.
    zh = named[-1] if len(named) == 2 and named[1].startswith(named[0]) else " ".join(named)
    en = ", ".join(p[1] for p in reversed(parts) if p)
    if address:
        zh, en = " ".join(x for x in (zh, address) if x), ", ".join(x for x in (address, en) if x)
    return {"zh": zh, "en": en} if zh else "-"
