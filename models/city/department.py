"""Reference data: departments, the category tree, the dispatch catalogue, deadline policies."""

from collections.abc import Iterable

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel


class Department(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=40)
    name_zh: str = Field(max_length=100)
    name_en: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    parent_code: str | None = Field(default=None, foreign_key="department.code", max_length=40)
    district: str | None = Field(default=None, max_length=40)
    street: str | None = Field(default=None, max_length=40)
    notify: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Whether a handler's reply waits for the department head's approval (审核) before it is sent.
    review_replies: bool = Field(default=False)


class Category(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=60)
    name_zh: str = Field(max_length=100)
    name_en: str = Field(max_length=200)
    parent_code: str | None = Field(default=None, foreign_key="category.code", max_length=60)
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # What the category covers and how citizens word it: the routing model's reading of the tree.
    description_zh: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    description_en: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    examples: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))


class RoutingRule(SQLModel, table=True):
    """One line of the dispatch catalogue: who owns a category, city-wide or in one place."""

    __tablename__ = "routing_rule"

    id: int | None = Field(default=None, primary_key=True)
    category_code: str = Field(foreign_key="category.code", max_length=60, index=True)
    district: str | None = Field(default=None, max_length=40)
    street: str | None = Field(default=None, max_length=40)
    department_code: str = Field(foreign_key="department.code", max_length=40)
    assisting: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=500)


class DeadlinePolicy(SQLModel, table=True):
    """Three clocks for a type and priority, optionally for one category; durations like '2h', '5d'."""

    __tablename__ = "deadline_policy"

    id: int | None = Field(default=None, primary_key=True)
    appeal_type: str | None = Field(default=None, max_length=20)
    priority: str = Field(max_length=10)
    category_code: str | None = Field(default=None, foreign_key="category.code", max_length=60)
    clock: str = Field(max_length=10)
    accept: str = Field(max_length=10)
    contact: str | None = Field(default=None, max_length=10)
    resolve: str = Field(max_length=10)


def by_name(departments: Iterable[Department]) -> list[Department]:
    """Departments as a person looks for them in a list: by the pinyin of their Chinese names."""
    from pypinyin import lazy_pinyin  # imported here: only the pages that list departments need it

    return sorted(departments, key=lambda d: (lazy_pinyin(d.name_zh), d.code))


def place_name(name_zh: str, name_en: str, *, street: bool) -> tuple[str, str]:
    """A district or street as people name it: the name of its government or street office, without
    the office (市南区人民政府 → 市南区; 八大关街道办事处 → 八大关街道)."""
    if street:
        return name_zh.removesuffix("办事处"), name_en.split(",")[0].removesuffix(" Office")
    return name_zh.removesuffix("人民政府"), name_en.removesuffix(" People's Government")
