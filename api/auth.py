"""Staff sign-in: OAuth2 password flow issuing short-lived signed tokens, and API keys for machines."""

from datetime import timedelta
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, OAuth2PasswordRequestForm

from appealflow.api.deps import SessionDep, SettingsDep
from appealflow.models.columns import utcnow
from appealflow.models.people import Staff, authenticate, staff_by_id, staff_for_api_key
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


@router.post("/auth/token")
def sign_in(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
            settings: SettingsDep) -> dict:
    staff = authenticate(session, form.username, form.password)
    if staff is None:
        raise _unauthorized("wrong username or password")
    return {"access_token": issue_token(staff, settings), "token_type": "bearer",
            "expires_in": int(TOKEN_LIFETIME.total_seconds())}


def current_staff(request: Request, session: SessionDep, settings: SettingsDep,
                  token: Annotated[str | None, Depends(_bearer)],
                  api_key: Annotated[str | None, Depends(_api_key)]) -> Staff:
    """The member of staff behind the request, from a bearer token or an API key; 401 otherwise."""
    if api_key:
        staff = staff_for_api_key(session, api_key)
        if staff is None:
            raise _unauthorized("unknown or revoked API key")
        return staff
    if not token:
        raise _unauthorized("sign in first")
    try:
        claims = jwt.decode(token, settings.signing_key(), algorithms=["HS256"], audience="appealflow-staff")
    except jwt.PyJWTError as error:
        raise _unauthorized(f"invalid token: {error}") from None
    staff = staff_by_id(session, int(claims["sub"]))
    if staff is None:
        raise _unauthorized("account disabled")
    return staff


CurrentStaff = Annotated[Staff, Depends(current_staff)]
