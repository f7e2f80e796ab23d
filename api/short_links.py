"""`/s/KEY`: a text message's short link, redirected to the appeal's tracking link (which a browser
is then shown as its page). Anyone may open one, so every try counts against the caller's address:
guessing keys (40 bits) runs into the limit long before it finds one."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import RedirectResponse

from appealflow.api import ratelimit
from appealflow.api.deps import SessionDep, SettingsDep
from appealflow.models.appeals.tracking import access_token
from appealflow.models.telling.short_links import code_for

router = APIRouter(tags=["tracking"])


@router.get("/s/{key}", status_code=303, dependencies=[Depends(ratelimit.limit("short_link"))],
            responses={303: {"description": "to the appeal's tracking link"}, 404: {"description": "no such link"}})
def short_link(key: Annotated[str, Path(min_length=1, max_length=16)], request: Request, session: SessionDep,
               settings: SettingsDep) -> RedirectResponse:
    code = code_for(session, key)
    if code is None:
        raise HTTPException(404, "没有这个链接 / no such link")
    token = access_token(settings.signing_key(), code)
    return RedirectResponse(f"{request.url_for('track_appeal', code=code)}?token={token}", status_code=303,
                            headers={"Cache-Control": "private, no-store"})
