"""Reference data: loading the data files into the database, and reading them back for routing."""

from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import delete
from sqlmodel import Session, select

from appealflow.models.city.department import Category, DeadlinePolicy, Department, RoutingRule
from appealflow.models.clocks.calendar import WorkingCalendar, load_calendar
from appealflow.models.clocks.deadlines import ORIGINAL, REOPENED, Duration, Policy
from appealflow.models.routing.keywords import Catalogue, CategoryNode, Rule

REFERENCE_DIR = Path(__file__).parent / "reference"


def _read(name: str, folder: Path) -> list[dict]:
    return yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8")) or []


def _flatten(nodes: list[dict], parent: str | None = None) -> list[dict]:
    flat = []
    for node in nodes:
        children = node.pop("children", None) or []
        flat.append(dict(node, parent_code=parent))
        flat.extend(_flatten(children, node["code"]))
    return flat


def load_reference_files(session: Session, folder: Path = REFERENCE_DIR) -> dict[str, int]:
    """Replace routing rules and policies, and upsert departments and categories, from data files."""
    departments = _read("departments", folder)
    categories = _flatten(_read("categories", folder))
    rules = _read("routing_rules", folder)
    policies = _read("deadline_policies", folder)

    # Parents first, so foreign keys hold at every insert.
    for row in _parents_first(departments, "parent"):
        existing = session.get(Department, row["code"])
        session.merge(Department(
            code=row["code"], name_zh=row["name_zh"], name_en=row["name_en"], kind=row["kind"],
            parent_code=row.get("parent"), district=row.get("district"), street=row.get("street"),
            notify=list(row.get("notify") or []),
            # A head's choice on the settings page survives a reload unless the file says otherwise.
            review_replies=row.get("review_replies", existing.review_replies if existing else False),
        ))
    session.flush()
    for row in categories:
        session.merge(Category(
            code=row["code"], name_zh=row["name_zh"], name_en=row["name_en"],
            parent_code=row["parent_code"], keywords=list(row.get("keywords") or []),
            description_zh=row.get("description_zh") or "", description_en=row.get("description_en") or "",
            examples=list(row.get("examples") or []),
        ))
    session.flush()
    session.execute(delete(RoutingRule))
    session.add_all(RoutingRule(
        category_code=r["category"], district=r.get("district"), street=r.get("street"),
        department_code=r["department"], assisting=list(r.get("assisting") or []), note=r.get("note"),
    ) for r in rules)
    session.execute(delete(DeadlinePolicy))
    for p in policies:
        reopen_original = p["priority"] == REOPENED and p["resolve"] == ORIGINAL
        for text in (p["accept"], "1m" if reopen_original else p["resolve"], p.get("contact") or "1m"):
            Duration.parse(text)  # refuse a bad file before anything uses it
    session.add_all(DeadlinePolicy(
        appeal_type=p.get("type"), priority=p["priority"], category_code=p.get("category"),
        clock=p["clock"], accept=p["accept"], contact=p.get("contact"), resolve=p["resolve"],
    ) for p in policies)
    session.flush()
    return {"departments": len(departments), "categories": len(categories),
            "routing_rules": len(rules), "deadline_policies": len(policies)}


def _parents_first(rows: list[dict], parent_key: str) -> list[dict]:
    by_code = {r["code"]: r for r in rows}
    ordered: list[dict] = []
    seen: set[str] = set()

    def visit(row: dict) -> None:
        if row["code"] in seen:
            return
        seen.add(row["code"])
        parent = row.get(parent_key)
        if parent in by_code:
            visit(by_code[parent])
        ordered.append(row)

    for row in rows:
        visit(row)
    return ordered


@dataclass(frozen=True)
class Reference:
    """What dispatch needs to decide, read once per batch."""

    catalogue: Catalogue
    policies: list[Policy]
    departments: dict[str, Department]
    calendar: WorkingCalendar


def read_catalogue(session: Session) -> Catalogue:
    """The category tree and the routing rules: what a page needs to offer the catalogue's departments."""
    categories = [CategoryNode(c.code, c.parent_code, tuple(c.keywords)) for c in session.exec(select(Category))]
    rules = [Rule(r.category_code, r.district, r.street, r.department_code, tuple(r.assisting))
             for r in session.exec(select(RoutingRule))]
    return Catalogue(categories, rules)


def read_reference(session: Session, *, hours: str = "09:00-17:00", zone: str = "Asia/Shanghai") -> Reference:
    """Everything dispatch decides with: the catalogue, deadline policies, departments, the calendar."""
    policies = [Policy(p.appeal_type, p.priority, p.category_code, p.clock, Duration.parse(p.accept),
                       Duration.parse(p.contact) if p.contact else None,
                       None if p.resolve == ORIGINAL else Duration.parse(p.resolve))
                for p in session.exec(select(DeadlinePolicy))]
    departments = {d.code: d for d in session.exec(select(Department))}
    return Reference(read_catalogue(session), policies, departments,
                     load_calendar(session, hours=hours, zone=zone))
