"""Staff sign-in: OAuth2 password flow issuing short-lived signed tokens, and API keys for machines."""

from datetime import timedelta
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, OAuth2PasswordRequestForm

from appealflow.api import ratelimit
from appealflow.api.deps import SessionDep, SettingsDep
from appealflow.models.city.people import Staff, authenticate, staff_by_id, staff_for_api_key
from appealflow.models.storage.columns import utcnow
from appealflow.settings import Settings

TOKEN_LIFETIME = timedelta(minutes=15)
router = APIRouter(tags=["auth"])
_bearer = OAuth2PasswordBearer(tokenUrl="auth/token", auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def issue_token(staff: Staff, settings: Settings) -> str:
    now = utcnow()
    claims = {"sub": str(staff.id), "role": staff.role.value, "iat": now, "exp": now + TOKEN_LIFETIME,
              "aud": "appealflow-staff"}
    return jwt.encode(claims, settings.signing_key(), algorithm="HS256")


@router.post("/auth/token", dependencies=[Depends(ratelimit.limit("sign_in"))])
def sign_in(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
            settings: SettingsDep) -> dict:
    # Per username too: guessing one account's password from many addresses is still limited.
    ratelimit.check(request, "sign_in_user", form.username[:64].casefold())
    staff = authenticate(session, form.username, form.password)
    if staff is None:
        raise _unauthorized("wrong username or password")
    return {"access_token": issue_token(staff, settings), "token_type": "bearer",
            "expires_in": int(TOKEN_LIFETIME.total_seconds())}


def current_staff(request: Request, session: SessionDep, settings: SettingsDep,
                  token: Annotated[str | None, Depends(_bearer)],
                  api_key: Annotated[str | None, Depends(_api_key)]) -> Staff:
    """The member of staff behind the request, from a bearer token or an API key; 401 otherwise."""
    staff = optional_staff(request, session, settings, token, api_key)
    if staff is None:
        raise _unauthorized("sign in first")
    return staff


async def _optional_staff(request: Request, session: SessionDep, settings: SettingsDep,
                          token: Annotated[str | None, Depends(_bearer)],
                          api_key: Annotated[str | None, Depends(_api_key)]) -> Staff | None:
    # A coroutine, so the public's requests (no credentials) skip a thread pool hand-off.
    if not api_key and not token:
        return None
    return await run_in_threadpool(optional_staff, request, session, settings, token, api_key)


def optional_staff(request: Request, session: SessionDep, settings: SettingsDep,
                   token: Annotated[str | None, Depends(_bearer)],
                   api_key: Annotated[str | None, Depends(_api_key)]) -> Staff | None:
    """The member of staff behind the request, None when it carries no credentials; 401 for
    credentials that do not hold (a bad token is never taken for no token)."""
    if api_key:
        staff = staff_for_api_key(session, api_key)
        if staff is None:
            raise _unauthorized("unknown or revoked API key")
        return staff
    if not token:
        return None
    try:
        claims = jwt.decode(token, settings.signing_key(), algorithms=["HS256"], audience="appealflow-staff",
                            options={"require": ["sub", "exp"]})
        user_id = int(claims["sub"])
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise _unauthorized(f"invalid token: {error}") from None
    if not 0 < user_id < 2**31:
        raise _unauthorized("invalid token")
    staff = staff_by_id(session, user_id)
    if staff is None:
        raise _unauthorized("account disabled")
    return staff


CurrentStaff = Annotated[Staff, Depends(current_staff)]
OptionalStaff = Annotated[Staff | None, Depends(_optional_staff)]
