"""A department head's tools: the department's canned replies and whether its replies are reviewed
before they are sent. Only a head, and only for their own department."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from appealflow.api.auth import CurrentStaff
from appealflow.api.deps import SessionDep, UnitOfWorkDep
from appealflow.models.appeals.enums import Role
from appealflow.models.appeals.lifecycle import NotPermitted
from appealflow.models.appeals.replies import PLACEHOLDERS, BadTemplate, add_canned, department_canned, remove_canned
from appealflow.models.city.department import Category, Department
from appealflow.models.city.people import Staff
from appealflow.models.oversight.orders import answer, open_for, order_view
from appealflow.models.storage.columns import utcnow

router = APIRouter(tags=["department desk"])
MAX_INT = 2**31 - 1


class CannedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=100)
    body: str = Field(min_length=1, max_length=4000, description="placeholders: " + ", ".join(
        "{" + name + "}" for name in PLACEHOLDERS))
    category: str | None = Field(default=None, max_length=60, description="a category code; none: any")


class CannedOut(BaseModel):
    id: int
    title: str
    body: str
    category: str | None
    created_by: str


class ReviewSetting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    review_replies: bool


def _head(staff: Staff, what: str) -> str:
    if staff.role != Role.department_head or not staff.department_code:
        raise NotPermitted(staff.role, what)
    return staff.department_code


@router.get("/staff/canned-replies", response_model=list[CannedOut])
def list_canned(staff: CurrentStaff, session: SessionDep) -> list[CannedOut]:
    """Your department's canned replies (handlers and heads)."""
    if staff.role not in (Role.handler, Role.department_head) or not staff.department_code:
        raise NotPermitted(staff.role, "read a department's canned replies")
    return [CannedOut(id=r.id or 0, title=r.title, body=r.body, category=r.category_code, created_by=r.created_by)
            for r in department_canned(session, staff.department_code)]


@router.post("/staff/canned-replies", response_model=CannedOut, status_code=201)
def create_canned(body: CannedIn, staff: CurrentStaff, unit: UnitOfWorkDep) -> CannedOut:
    """Add a canned reply to your department (heads only); 422 names an unknown placeholder."""
    department = _head(staff, "keep canned replies")
    if body.category and unit.session.get(Category, body.category) is None:
        raise BadTemplate(f"unknown category {body.category!r}", field="category")
    reply = add_canned(unit.session, department_code=department, category_code=body.category, title=body.title,
                       body=body.body, by=staff.actor)
    unit.commit()
    return CannedOut(id=reply.id or 0, title=reply.title, body=reply.body, category=reply.category_code,
                     created_by=reply.created_by)


@router.delete("/staff/canned-replies/{reply_id}", status_code=204)
def delete_canned(reply_id: Annotated[int, Path(ge=1, le=MAX_INT)], staff: CurrentStaff, unit: UnitOfWorkDep) -> None:
    """Delete one of your department's canned replies (heads only)."""
    if not remove_canned(unit.session, _head(staff, "keep canned replies"), reply_id):
        raise HTTPException(404, "no such canned reply in your department")
    unit.commit()


@router.get("/staff/department/review-replies", response_model=ReviewSetting)
def review_setting(staff: CurrentStaff, session: SessionDep) -> ReviewSetting:
    """Whether your department's replies wait for the head's approval."""
    if not staff.department_code:
        raise NotPermitted(staff.role, "read a department's settings")
    department = session.get(Department, staff.department_code)
    return ReviewSetting(review_replies=bool(department and department.review_replies))


@router.put("/staff/department/review-replies", response_model=ReviewSetting)
def set_review(body: ReviewSetting, staff: CurrentStaff, unit: UnitOfWorkDep) -> ReviewSetting:
    """Turn review of replies on or off for your department (heads only). Replies already waiting
    stay waiting for a decision."""
    department = unit.session.get(Department, _head(staff, "change the department's review setting"))
    if department is None:
        raise HTTPException(404, "no such department")
    department.review_replies = body.review_replies
    unit.commit()
    return ReviewSetting(review_replies=department.review_replies)


class OrderAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str = Field(min_length=1, max_length=5000)


def _department_staff(staff: Staff, what: str) -> str:
    if staff.role not in (Role.handler, Role.department_head) or not staff.department_code:
        raise NotPermitted(staff.role, what)
    return staff.department_code


@router.get("/staff/orders")
def my_orders(staff: CurrentStaff, session: SessionDep) -> list[dict]:
    """Your department's unanswered supervision orders (督办单), the nearest deadline first."""
    return [order_view(o) for o in open_for(session, _department_staff(staff, "read supervision orders"))]


@router.post("/staff/orders/{order_id}/answer")
def answer_order(order_id: Annotated[int, Path(ge=1, le=MAX_INT)], body: OrderAnswer, staff: CurrentStaff,
                 unit: UnitOfWorkDep) -> dict:
    """Your department's answer to a supervision order, once; whether it came in time is counted."""
    _department_staff(staff, "answer supervision orders")
    order = answer(unit.session, staff, order_id, body.answer, now=utcnow())
    unit.commit()
    return order_view(order)
