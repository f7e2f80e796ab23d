"""The department head's page: the department's canned replies, and whether replies are reviewed.
Through the same JSON routes as any client (api/desk.py)."""

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from appealflow.api.pages.client import field_errors
from appealflow.api.pages.common import check_csrf, finish, render
from appealflow.api.pages.signed_in import HeadPage
from appealflow.api.pages.staff import api_for
from appealflow.models.appeals.replies import PLACEHOLDERS
from appealflow.models.city.people import Staff

router = APIRouter()


def _text(value) -> str:
    return value if isinstance(value, str) else ""


async def _desk_page(request: Request, staff: Staff, *, errors: dict | None = None, form: dict | None = None,
                     status: int = 200):
    api = api_for(request)
    replies = (await api.get("/staff/canned-replies")).json()
    review = (await api.get("/staff/department/review-replies")).json()
    categories = (await api.get("/reference/categories")).json()
    return render(request, "desk.html", {
        "replies": replies, "review": review.get("review_replies", False), "errors": errors or {},
        "form": form or {}, "placeholders": "、".join("{" + p + "}" for p in PLACEHOLDERS),
        "categories": categories, "notice": request.query_params.get("notice")}, staff=staff, status=status)


@router.get("/work/canned")
async def desk_page(request: Request, staff: HeadPage):
    return await _desk_page(request, staff)


@router.post("/work/canned")
async def add_reply(request: Request, staff: HeadPage):
    form = await request.form()
    check_csrf(request, _text(form.get("csrf")))
    body = {"title": _text(form.get("title")).strip(), "body": _text(form.get("body")).strip(),
            "category": _text(form.get("category")).strip() or None}
    answer = await api_for(request).post("/staff/canned-replies", json=body)
    if answer.status_code == 201:
        response = RedirectResponse("/work/canned?notice=saved", status_code=303)
        finish(request, response)
        return response
    return await _desk_page(request, staff, errors=field_errors(answer), form=body,
                            status=answer.status_code if answer.status_code < 500 else 400)


@router.post("/work/canned/{reply_id}/delete")
async def delete_reply(request: Request, reply_id: int, staff: HeadPage):
    form = await request.form()
    check_csrf(request, _text(form.get("csrf")))
    await api_for(request).delete(f"/staff/canned-replies/{reply_id}")
    response = RedirectResponse("/work/canned?notice=deleted", status_code=303)
    finish(request, response)
    return response


@router.post("/work/canned/review")
async def set_review(request: Request, staff: HeadPage):
    form = await request.form()
    check_csrf(request, _text(form.get("csrf")))
    await api_for(request).put("/staff/department/review-replies",
                               json={"review_replies": form.get("review_replies") == "on"})
    response = RedirectResponse("/work/canned?notice=saved", status_code=303)
    finish(request, response)
    return response
