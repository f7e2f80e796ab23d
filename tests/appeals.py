"""Test data: appeal bodies, and an oracle reading the dispatch catalogue straight from its file."""

from __future__ import annotations

import random

import yaml

from appealflow.models.city.reference import REFERENCE_DIR


def _load(name: str):
    return yaml.safe_load((REFERENCE_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


class CatalogueOracle:
    """Who should get an appeal, read from routing_rules.yaml without the project's routing code."""

    def __init__(self):
        self.rules = _load("routing_rules")
        self.parents: dict[str, str | None] = {}
        self.keywords: dict[str, list[str]] = {}

        def walk(nodes, parent=None):
            for node in nodes:
                self.parents[node["code"]] = parent
                self.keywords[node["code"]] = node.get("keywords") or []
                walk(node.get("children") or [], node["code"])

        walk(_load("categories"))
        self.places = [(d["district"], d["street"]) for d in _load("departments") if d["kind"] == "street"]

    def expected(self, category: str, district: str | None, street: str | None) -> str | None:
        code: str | None = category
        while code:
            rules = [r for r in self.rules if r["category"] == code]
            for scope in ("street", "district", "city"):
                for r in rules:
                    if scope == "street" and r.get("street") and (r["district"], r["street"]) == (district, street):
                        return r["department"]
                    if scope == "district" and r.get("district") and not r.get("street") \
                            and r["district"] == district:
                        return r["department"]
                    if scope == "city" and not r.get("district"):
                        return r["department"]
            code = self.parents[code]
        return None

    def routable_categories(self) -> list[str]:
        return sorted(c for c in self.parents if self.expected(c, None, None) is not None)


def appeal_body(rng: random.Random, oracle: CatalogueOracle, n: int) -> tuple[dict, str | None]:
    """A varied appeal and the department it must reach (None: triage)."""
    district, street = rng.choice(oracle.places)
    requester = {"name": "测试用户", "phone": f"1380000{n:04d}", "email": f"citizen{n}@example.test"}
    location = {"district": district, "street": street, "address": f"{n}号"}
    if n % 20 == 0:  # nothing a rule can place
        return {"type": "consultation", "title": "一个问题", "text": "请问这件事情应该怎么办理？",
                "requester": requester, "location": location}, None
    category = rng.choice(oracle.routable_categories())
    body = {"type": rng.choice(["complaint", "help_request", "report", "consultation", "suggestion"]),
            "priority": "urgent" if n % 7 == 0 else "normal",
            "title": f"诉求 {n}", "text": "具体情况如下。" * 3, "location": location, "requester": requester}
    if n % 3 == 0 and oracle.keywords[category]:
        body["text"] += oracle.keywords[category][0]  # found by keyword, not given
        leaf = category
        body_category = None
    else:
        leaf = body_category = category
    if body_category:
        body["category"] = body_category
    if n % 11 == 0:
        body["channel"], body["operator_id"] = "hotline", "op-007"
    return body, oracle.expected(leaf, district, street)
