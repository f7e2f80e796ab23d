"""Which department an appeal goes to: classify by category and keywords, then route by the catalogue."""

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class CategoryNode:
    code: str
    parent_code: str | None
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    category_code: str
    district: str | None
    street: str | None
    department_code: str
    assisting: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    category_code: str | None
    confidence: float
    reason: str


@dataclass(frozen=True)
class Route:
    department_code: str
    assisting: tuple[str, ...]
    reason: str


class Catalogue:
    """The category tree and the dispatch catalogue, indexed for routing."""

    def __init__(self, categories: list[CategoryNode], rules: list[Rule]):
        self.categories = {c.code: c for c in categories}
        self._rules: dict[str, list[Rule]] = defaultdict(list)
        for rule in rules:
            self._rules[rule.category_code].append(rule)
        self._keywords = [(kw.lower(), c.code) for c in categories for kw in c.keywords if kw.strip()]
        self.keywords = self._keywords
        self._routes: dict[tuple[str, str | None, str | None], Route | None] = {}

    def lineage(self, code: str) -> list[str]:
        """The category and its ancestors, most specific first."""
        chain: list[str] = []
        while code and code in self.categories and code not in chain:
            chain.append(code)
            code = self.categories[code].parent_code or ""
        return chain

    def theme(self, code: str) -> str:
        return self.lineage(code)[-1]

    def classify(self, title: str, text: str, given: str | None) -> Classification:
        """The requester's own category wins; otherwise the keywords vote, grouped by theme."""
        if given:
            return Classification(given, 1.0, "category given by the requester")
        haystack = f"{title}\n{text}".lower()
        hits: dict[str, int] = defaultdict(int)
        for keyword, code in self._keywords:
            if keyword in haystack:
                hits[code] += 1
        if not hits:
            return Classification(None, 0.0, "no category keyword found")
        by_theme: dict[str, int] = defaultdict(int)
        for code, count in hits.items():
            by_theme[self.theme(code)] += count
        ranked = sorted(by_theme.items(), key=lambda kv: (-kv[1], kv[0]))
        best_theme, best = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        in_theme = [c for c in hits if self.theme(c) == best_theme]
        # Prefer the most specific matched node, then the one with most hits.
        chosen = max(in_theme, key=lambda c: (len(self.lineage(c)), hits[c], c))
        confidence = best / (best + runner_up)
        matched = ", ".join(sorted(in_theme))
        return Classification(chosen, confidence, f"keywords matched {matched} ({best} vs {runner_up})")

    def route(self, category_code: str, district: str | None, street: str | None) -> Route | None:
        """The most specific rule: a child category before its theme, a street before a district
        before the whole city."""
        key = (category_code, district, street)
        if key not in self._routes:  # the model asks for every category of every appeal
            self._routes[key] = self._route(category_code, district, street)
        return self._routes[key]

    def departments_for(self, category_code: str | None, district: str | None, street: str | None) -> list[str]:
        """The departments the catalogue names for this category at this place: the one it routes to,
        then its assisting ones (what a dispatcher is offered first)."""
        found = self.route(category_code, district, street) if category_code in self.categories else None
        return [found.department_code, *found.assisting] if found else []

    def _route(self, category_code: str, district: str | None, street: str | None) -> Route | None:
        for code in self.lineage(category_code):
            candidates = [r for r in self._rules.get(code, ()) if _applies(r, district, street)]
            if candidates:
                rule = max(candidates, key=lambda r: (r.street is not None, r.district is not None))
                where = rule.street or rule.district or "city-wide"
                return Route(rule.department_code, rule.assisting, f"rule {code} @ {where}")
        return None


def _applies(rule: Rule, district: str | None, street: str | None) -> bool:
    if rule.district is not None and rule.district != district:
        return False
    return rule.street is None or rule.street == street
