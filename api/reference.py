"""The values intake accepts, published: districts with their streets, and the category tree."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from appealflow.api import ratelimit
from appealflow.api.deps import SessionDep
from appealflow.models.appeals.intake import categories, districts
from appealflow.models.appeals.nearby import nearby_open
from appealflow.models.appeals.privacy import NOTICE, NOTICE_VERSION

router = APIRouter(prefix="/reference", tags=["reference"])


class Street(BaseModel):
    code: str
    name_zh: str
    name_en: str


class District(BaseModel):
    code: str
    name_zh: str | None
    name_en: str | None
    streets: list[Street]


class CategoryOut(BaseModel):
    code: str
    name_zh: str
    name_en: str
    parent: str | None


@router.get("/districts", response_model=list[District])
def list_districts(session: SessionDep) -> list[dict]:
    """Valid `location.district` codes, each with its valid `location.street` codes."""
    return districts(session)


@router.get("/categories", response_model=list[CategoryOut])
def list_categories(session: SessionDep) -> list[dict]:
    """Valid `category` codes, parents before their children."""
    return categories(session)


@router.get("/privacy")
def privacy_notice() -> dict:
    """The privacy notice a requester agrees to when filing (`privacy_consent: true` records its version)."""
    return {"version": NOTICE_VERSION, "text": NOTICE}


@router.get("/nearby", dependencies=[Depends(ratelimit.limit("policy_search"))])
def nearby(session: SessionDep, lat: Annotated[float, Query(ge=-90, le=90)],
           long: Annotated[float, Query(ge=-180, le=180)],
           category: Annotated[str | None, Query(max_length=60, pattern=r"^[a-z0-9_]+$")] = None) -> dict:
    """Open appeals of the same category within about 200 m, nearest first, for a citizen about to
    file: code, category, status, distance and day only (nothing anyone typed, nobody's details)."""
    return {"appeals": nearby_open(session, lat, long, category=category)}
