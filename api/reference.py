"""The values intake accepts, published: districts with their streets, and the category tree."""

from fastapi import APIRouter
from pydantic import BaseModel

from appealflow.api.deps import SessionDep
from appealflow.models.appeals.intake import categories, districts
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
