"""Help in routing and answering: what routing suggested for an appeal and which open appeals are
probably the same matter (for the centre's dispatchers), and the policy Q&A base searched for a
question (for operators on the line, and for citizens while they type, before they submit)."""

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from appealflow.api import ratelimit
from appealflow.api.auth import CurrentStaff
from appealflow.api.deps import SessionDep, SettingsDep
from appealflow.api.workbench import Code, readable
from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import CENTRE_ROLES, Role
from appealflow.models.routing.classifier import embedder
from appealflow.models.routing.dispatch import DUPLICATE_EVENT
from appealflow.models.routing.duplicates import OPEN, candidates_for
from appealflow.models.routing.policy_qa import search
from appealflow.models.storage.columns import utcnow

router = APIRouter(tags=["routing"])
NOT_FOUND = ("没有找到相关的政策答复，请提交诉求，由工作人员为您解答 / "
             "No answer found in the policy base: submit your appeal and a person will answer it")
MAY_SEE_SUGGESTIONS = CENTRE_ROLES | {Role.admin}


class Suggestion(BaseModel):
    department: str | None
    category: str | None
    confidence: float | None
    reason: str | None
    keywords: list[str] = []  # the category's keywords the text used


class Duplicate(BaseModel):
    code: str
    similarity: float
    shared_places: list[str]
    why: str


class RoutingHelp(BaseModel):
    code: str
    status: str
    routing_reason: str | None
    suggestions: list[Suggestion]
    duplicates: list[Duplicate]


@router.get("/routing/suggestions/{code}", response_model=RoutingHelp)
async def routing_help(code: Code, staff: CurrentStaff, session: SessionDep, settings: SettingsDep) -> RoutingHelp:
    """Why the appeal went where it went, the top suggestions routing recorded (for triage), and open
    appeals that are probably the same matter, to merge with one click (the `merge` action). Never
    merged here: a dispatcher decides."""
    if staff.role not in MAY_SEE_SUGGESTIONS:
        raise HTTPException(403, "routing suggestions are for the centre's dispatchers and supervisors")
    appeal = readable(session, staff, code)
    events = list(session.execute(select(AppealEvent).where(col(AppealEvent.appeal_id) == appeal.id)
                                  .order_by(col(AppealEvent.id).desc())).scalars())
    # The latest event that recorded suggestions (routing's triage, or a later pass).
    recorded: list = next((list(e.detail["suggestions"]) for e in events
                           if e.detail and isinstance(e.detail.get("suggestions"), list)), [])
    found = await run_in_threadpool(candidates_for, session, appeal, embedder(settings.embedding_backend).embed)
    # Twins dispatch recorded at intake and still open, though the live search no longer ranks them.
    live = {c.code for c in found}
    at_intake = [t for e in events if e.kind == DUPLICATE_EVENT for t in e.detail.get("twins", [])
                 if isinstance(t, dict) and t.get("code") not in live]
    still_open = set(session.execute(select(col(Appeal.code)).where(
        col(Appeal.code).in_([t["code"] for t in at_intake]), col(Appeal.status).in_(OPEN),
        col(Appeal.parent_id).is_(None))).scalars()) if at_intake else set()
    return RoutingHelp(
        code=appeal.code, status=appeal.status, routing_reason=appeal.routing_reason,
        suggestions=[Suggestion(department=s.get("department"), category=s.get("category"),
                                confidence=s.get("probability"), reason=s.get("why"),
                                keywords=[str(k) for k in s.get("keywords") or []])
                     for s in recorded if isinstance(s, dict)],
        duplicates=[Duplicate(code=c.code, similarity=c.similarity, shared_places=list(c.shared_places), why=c.why)
                    for c in found] + [Duplicate(code=t["code"], similarity=t.get("similarity") or 0.0,
                                                 shared_places=list(t.get("shared_places") or []),
                                                 why=t.get("why") or "") for t in at_intake
                                       if t["code"] in still_open])


class PolicyAnswerOut(BaseModel):
    id: int
    question: str
    answer: str
    theme: str
    source: str
    valid_from: date | None  # the operator reads out whether the rule still holds
    valid_to: date | None


class PolicySearch(BaseModel):
    query: str
    found: bool
    answers: list[PolicyAnswerOut]
    handover: str | None  # said when nothing is close enough: a person answers instead


@router.get("/policy/search", response_model=PolicySearch, dependencies=[Depends(ratelimit.limit("policy_search"))])
async def policy_search(session: SessionDep, settings: SettingsDep,
                        q: Annotated[str, Query(min_length=2, max_length=300, description="the question")],
                        limit: Annotated[int, Query(ge=1, le=5)] = 3) -> PolicySearch:
    """The best entries of the policy Q&A base valid today, with their sources; nothing when nothing
    is close, and then the hand-over to a person. No sign-in: citizens see these while typing."""
    today = utcnow().astimezone(ZoneInfo(settings.timezone)).date()  # the city's day decides validity
    hits = await run_in_threadpool(search, session, q, embedder(settings.embedding_backend).embed, today=today,
                                   limit=limit)
    return PolicySearch(query=q, found=bool(hits), handover=None if hits else NOT_FOUND,
                        answers=[PolicyAnswerOut(id=h.id, question=h.question, answer=h.answer, theme=h.theme,
                                                 source=h.source, valid_from=h.valid_from,
                                                 valid_to=h.valid_to) for h in hits])
