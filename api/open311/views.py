"""Appeals as GeoReport service requests: status in the spec's open/closed and in words, times in
the city's zone. No field carries the requester's name or contact."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from appealflow.api.open311.wire import _both
from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.appeals.open311 import CLOSED, Context, Open311Request, context_for
from appealflow.models.storage.columns import stored_id

CREATED_NOTICE = ("已收到，将按派单目录分派给承办单位，办结时限在派单时确定。/ Received; it will be routed to the "
                  "responsible department, and its deadline is set then.")


def created_view(appeal: Appeal, row: Open311Request | None) -> dict:
    """The answer to a filed request."""
    return dict(service_request_id=appeal.code, service_notice=CREATED_NOTICE,
                account_id=row.account_id if row else None)


def local_time(moment: datetime | None, zone: str) -> str | None:
    """ISO 8601 in the city's zone with its offset; fractions of a second kept so nothing rounds."""
    return moment.astimezone(ZoneInfo(zone)).isoformat() if moment else None


# What each status of our life cycle tells the public: open or closed, and in words.
STATUS_NOTES: dict[str, str] = {
    AppealStatus.received: "已收到，正在分派 / Received, being routed",
    AppealStatus.triage: "12345热线正在人工确定承办单位 / The 12345 centre is choosing the responsible department",
    AppealStatus.dispatched: "已派至{agency}，待签收 / Sent to {agency}, waiting to be accepted",
    AppealStatus.accepted: "{agency}已签收 / Accepted by {agency}",
    AppealStatus.in_progress: "{agency}正在办理 / {agency} is working on it",
    AppealStatus.reviewing: "{agency}正在办理 / {agency} is working on it",
    AppealStatus.waiting_requester: "等待诉求人补充信息，计时暂停 / Waiting for information from the requester; "
                                    "the clock is paused",
    AppealStatus.replied: "{agency}已答复，待诉求人评价 / {agency} has replied; waiting for the requester's rating",
    AppealStatus.returned: "承办单位退回，12345热线重新分派 / Returned by the department; "
                           "the 12345 centre re-routes it",
    AppealStatus.arbitration: "多次退回，由督办人员裁定承办单位 / Returned repeatedly; "
                              "a supervisor decides who handles it",
    AppealStatus.reopened: "诉求人不满意，重新办理 / The requester was not satisfied; it is being handled again",
    AppealStatus.merged: "已并入诉求 {parent} 一并办理 / Merged into request {parent} and handled with it",
}
SATISFACTION = {"satisfied": "满意 / satisfied", "basically_satisfied": "基本满意 / basically satisfied",
                "unsatisfied": "不满意 / unsatisfied"}


def _status_notes(appeal: Appeal, agency: str, context: Context) -> str:
    if appeal.status == AppealStatus.closed:
        if context.closed_by.get(stored_id(appeal)) == "invalidate":
            return "经核实不属于有效诉求，已关闭 / Closed: not a valid appeal"
        rating = SATISFACTION.get(appeal.rated_satisfaction or "")
        return "已办结 / Resolved" + (f"；诉求人评价：{rating}" if rating else "")
    template = STATUS_NOTES.get(appeal.status, appeal.status)
    return template.format(agency=agency or "承办单位 / the department",
                           parent=context.parents.get(stored_id(appeal), ""))


def _service_notice(appeal: Appeal, context: Context) -> str | None:
    if appeal.status in CLOSED:
        return None
    if appeal.status == AppealStatus.waiting_requester:
        return "计时暂停，收到补充信息后继续 / The deadline clock is paused until the information arrives"
    if appeal.resolve_due_at is None:
        return "派单后确定办结时限 / The deadline is set when it is dispatched"
    due = appeal.resolve_due_at.astimezone(ZoneInfo(context.zone)).strftime("%Y-%m-%d %H:%M")
    return f"承办单位应于 {due} 前办结 / The department is due to resolve it by {due}"


def request_view(appeal: Appeal, context: Context) -> dict:
    """An appeal as a GeoReport service request. No field carries the requester's name or contact."""
    category = context.categories.get(appeal.category_code or "")
    department = context.departments.get(appeal.department_code or "")
    agency = _both(department.name_zh, department.name_en) if department else None
    row = context.submissions.get(stored_id(appeal))
    return dict(
        service_request_id=appeal.code,
        status="closed" if appeal.status in CLOSED else "open",
        status_notes=_status_notes(appeal, agency or "", context),
        service_name=_both(category.name_zh, category.name_en) if category else None,
        service_code=appeal.category_code or "",
        description=appeal.text,
        agency_responsible=agency,
        service_notice=_service_notice(appeal, context),
        requested_datetime=local_time(appeal.received_at, context.zone),
        updated_datetime=local_time(appeal.updated_at, context.zone),
        expected_datetime=local_time(appeal.resolve_due_at, context.zone),
        address=appeal.address,
        address_id=row.address_id if row else None,
        zipcode=None,
        lat=row.lat if row else None,
        long=row.long if row else None,
        # The client's own link as it sent it; else the requester's first photo, as we serve it.
        media_url=(row.media_url if row and row.media_url else None) or _photo_url(appeal, context),
    )


def _photo_url(appeal: Appeal, context: Context) -> str | None:
    photo = context.photos.get(stored_id(appeal))
    return f"{context.public_url.rstrip('/')}/media/{appeal.code}/{photo}.jpg" if photo else None


def views(session: Session, appeals: Sequence[Appeal], zone: str, public_url: str) -> list[dict]:
    """These appeals as service requests, their shared facts read once."""
    context = context_for(session, appeals, zone, public_url)
    return [request_view(a, context) for a in appeals]
