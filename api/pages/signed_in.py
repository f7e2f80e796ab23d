"""Who is signed in on a staff page, as a dependency: `StaffPage` sends anyone not signed in to the
sign-in page (and back after), `OperatorPage` and `OversightPage` also answer 404 to other roles,
as if the page did not exist. Written once here instead of in every staff page."""

from collections.abc import Awaitable, Callable, Collection
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from appealflow.api.pages.common import render, sign_in_redirect, signed_in
from appealflow.models.appeals.enums import OVERSIGHT_ROLES, Role
from appealflow.models.city.people import Staff
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings


class SignInFirst(Exception):
    """No one is signed in: the page sends the reader to sign in."""


class NotHere(Exception):
    """Signed in, but the page is not for this role: a 404, as for a page that does not exist."""

    def __init__(self, staff: Staff):
        super().__init__(staff.role)
        self.staff = staff


async def current(request: Request) -> Staff | None:
    """The staff member the page cookie names, if any (a database read, off the event loop)."""
    def look() -> Staff | None:
        with session_scope(get_settings().sqlalchemy_url) as session:
            return signed_in(request, session, get_settings())

    return await run_in_threadpool(look)


def staff_page(roles: Collection[Role] = ()) -> Callable[[Request], Awaitable[Staff]]:
    """The dependency of a staff page open to these roles (every role if none)."""
    async def signed_in_staff(request: Request) -> Staff:
        staff = await current(request)
        if staff is None:
            raise SignInFirst()
        if roles and staff.role not in roles:
            raise NotHere(staff)
        return staff

    return signed_in_staff


StaffPage = Annotated[Staff, Depends(staff_page())]
OperatorPage = Annotated[Staff, Depends(staff_page((Role.operator,)))]
OversightPage = Annotated[Staff, Depends(staff_page(OVERSIGHT_ROLES))]
HeadPage = Annotated[Staff, Depends(staff_page((Role.department_head,)))]


def install(app: FastAPI) -> None:
    """Answer the two refusals as pages."""
    async def sign_in_first(request: Request, _: Exception):
        return sign_in_redirect(request)

    async def not_here(request: Request, error: Exception):
        staff = error.staff if isinstance(error, NotHere) else None
        return render(request, "not_found.html", {}, staff=staff, status=404)

    app.add_exception_handler(SignInFirst, sign_in_first)
    app.add_exception_handler(NotHere, not_here)
