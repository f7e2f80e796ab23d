"""What every page shares: the language (browser, cookie or switch), the catalogues, times in the
city's zone, the staff session cookie (the same signed token as `POST /auth/token`), CSRF tokens,
and rendering through Jinja2 with autoescape on, so whatever a citizen typed is shown as text."""

import hashlib
import hmac
import secrets
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jwt
import yaml
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from sqlmodel import Session

from appealflow.api.auth import TOKEN_LIFETIME, issue_token, optional_staff
from appealflow.models.appeals.history import STAFF_STATUS_WORDS
from appealflow.models.appeals.tracking import STATUS_WORDS
from appealflow.models.city.people import Staff
from appealflow.settings import Settings, get_settings

HERE = Path(__file__).parent
LANGUAGES = ("zh", "en")
STAFF_COOKIE = "af_staff"
CSRF_COOKIE = "af_csrf"
LANG_COOKIE = "af_lang"

# Autoescape on for every template: what a citizen typed is always shown as text.
templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True))


@lru_cache
def catalogue(language: str) -> dict[str, str]:
    """The pages' words in one language. A status is named as its requester reads it in the JSON
    view (`STATUS_WORDS`), so a page and the API never call one status two things; staff pages name
    it in the desk's words (`staff_status.*`, from `STAFF_STATUS_WORDS`)."""
    words = yaml.safe_load((HERE / "locales" / f"{language}.yaml").read_text(encoding="utf-8"))
    return (words | {f"status.{status}": by_language[language][0] for status, by_language in STATUS_WORDS.items()}
            | {f"staff_status.{status}": by_language[language] for status, by_language in STAFF_STATUS_WORDS.items()})


def language(request: Request) -> str:
    """`?lang=` (the switch), then the cookie the switch set, then the browser's Accept-Language."""
    chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    best, best_q = "zh", -1.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower()[:2]
        try:
            q = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1.0
        except ValueError:
            q = 0.0
        if code in LANGUAGES and q > best_q:
            best, best_q = code, q
    return best


class Words:
    """The catalogue of one language; a missing key shows itself instead of failing a page."""

    def __init__(self, lang: str):
        self.lang = lang
        self.words = catalogue(lang)

    def __call__(self, key: str, **values) -> str:
        text = self.words.get(key, key)
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self.words


def local_time(moment: datetime | None, lang: str, zone: str) -> str:
    """As people write it in the city: `12月4日 17:00`, `4 Dec 17:00`."""
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone))
    if lang == "zh":
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local.day} {local:%b} {local:%H:%M}"


def local_day(value: date | str | None, lang: str) -> str:
    """A calendar day as people write it: `2026年1月1日`, `1 Jan 2026`."""
    if not value:
        return ""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.year}年{day.month}月{day.day}日" if lang == "zh" else f"{day.day} {day:%b} {day.year}"


def named(item: dict | object | None, lang: str) -> str:
    """The name of a department, category or place in the page's language."""
    if item is None:
        return "—"
    get = item.get if isinstance(item, dict) else lambda key: getattr(item, key, None)
    return get(f"name_{lang}") or get("name_zh") or get("code") or "—"


# CSRF: a random value in an HttpOnly cookie, and its HMAC in each form. A page on another site can
# make a browser post, but it cannot read the cookie nor compute the HMAC without the secret key.
# The HMAC also covers who is signed in, so a cookie-and-token pair taken from one staff session (a
# colleague's, planted in another browser) is refused in any other.
def _csrf_for(cookie: str, settings: Settings, subject: str = "") -> str:
    return hmac.new(settings.signing_key(), f"csrf:{cookie}:{subject}".encode(), hashlib.sha256).hexdigest()


def _csrf_subject(request: Request) -> str:
    """The account of the staff cookie, read without checking it: the signature is checked where the
    page signs the person in, and a forged cookie only changes which HMAC the form must carry."""
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        return ""
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("sub", ""))[:40]
    except (jwt.PyJWTError, AttributeError):
        return ""


def csrf_cookie(request: Request) -> str:
    if not hasattr(request.state, "csrf_cookie"):
        existing = request.cookies.get(CSRF_COOKIE, "")
        request.state.csrf_cookie = existing if 20 <= len(existing) <= 64 and existing.isalnum() \
            else secrets.token_hex(16)
    return request.state.csrf_cookie


def check_csrf(request: Request, sent: str | None) -> None:
    cookie = request.cookies.get(CSRF_COOKIE)
    # Compared as bytes: compare_digest refuses text that is not ASCII, and a form may send any.
    wanted = _csrf_for(cookie, get_settings(), _csrf_subject(request)) if cookie else ""
    if not cookie or not sent or not hmac.compare_digest(wanted.encode(), sent.encode("utf-8", "surrogatepass")):
        raise HTTPException(403, "表单已过期，请刷新页面后重试 / the form expired: reload the page and try again")


def signed_in(request: Request, session: Session, settings: Settings) -> Staff | None:
    """The member of staff whose session cookie this is; None when there is none or it lapsed."""
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        return None
    try:
        staff = optional_staff(request, session, settings, token, None)
    except HTTPException:
        return None
    if staff is not None:
        # Sliding session: a page opened in the second half of the token's life gets a fresh one.
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            if claims["exp"] - datetime.now().timestamp() < TOKEN_LIFETIME.total_seconds() / 2:
                request.state.renew_staff_token = issue_token(staff, settings)
        except (jwt.PyJWTError, KeyError, TypeError):
            pass
    return staff


def set_staff_cookie(response, token: str, request: Request) -> None:
    response.set_cookie(STAFF_COOKIE, token, max_age=int(TOKEN_LIFETIME.total_seconds()), httponly=True,
                        samesite="lax", secure=request.url.scheme == "https", path="/")


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/staff/sign-in?" + urlencode({"next": target}), status_code=303)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: never `//elsewhere` or a scheme."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def switch_url(request: Request, lang: str) -> str:
    query = dict(request.query_params)
    query["lang"] = lang
    return request.url.path + "?" + urlencode(query)


def render(request: Request, name: str, context: dict, *, status: int = 200,
           staff: Staff | None = None) -> HTMLResponse:
    settings = get_settings()
    lang = language(request)
    words = Words(lang)
    other = "en" if lang == "zh" else "zh"
    cookie = csrf_cookie(request)
    page = {
        "request": request, "lang": lang, "t": words, "other_lang": other, "staff": staff,
        "switch_url": switch_url(request, other), "csrf": _csrf_for(cookie, settings, _csrf_subject(request)),
        "when": lambda moment: local_time(moment, lang, settings.timezone),
        "named": lambda item: named(item, lang),
        "day": lambda value: local_day(value, lang),
    }
    response = templates.TemplateResponse(request, name, {**page, **context}, status_code=status)
    finish(request, response)
    return response


def finish(request: Request, response) -> None:
    """The cookies every page answer carries: CSRF, the language switched to, a renewed session."""
    if request.cookies.get(CSRF_COOKIE) != csrf_cookie(request):
        response.set_cookie(CSRF_COOKIE, csrf_cookie(request), httponly=True, samesite="lax", path="/",
                            secure=request.url.scheme == "https")
    chosen = request.query_params.get("lang")
    if chosen in LANGUAGES and request.cookies.get(LANG_COOKIE) != chosen:
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, samesite="lax", path="/")
    renewed = getattr(request.state, "renew_staff_token", None)
    if renewed:
        set_staff_cookie(response, renewed, request)
    response.headers.setdefault("Cache-Control", "no-store")
