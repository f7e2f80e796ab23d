"""The links in messages and QR codes name the API's resources (`/appeals/{code}?token=`, its rating
form, `/staff/appeals/{code}`). An HTTP client gets their JSON; a browser, which asks for HTML first,
is sent to the page showing the same resource."""

import re
from urllib.parse import parse_qs, urlencode

PAGES = (
    (re.compile(r"^/appeals/([0-9A-Za-z-]{1,20})$"), "/t/{code}"),
    (re.compile(r"^/appeals/([0-9A-Za-z-]{1,20})/rating$"), "/t/{code}/rate"),
    (re.compile(r"^/staff/appeals/([0-9A-Za-z-]{1,20})$"), "/work/appeals/{code}"),
)


def wants_html(accept: str) -> bool:
    """A browser's navigation: text/html named before any JSON type (*/* alone is an API client)."""
    accept = accept.lower()
    html = accept.find("text/html")
    json = accept.find("json")
    return html >= 0 and (json < 0 or html < json)


class BrowserToPage:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            headers = dict(scope.get("headers") or ())
            if wants_html(headers.get(b"accept", b"").decode("latin-1")) and b"authorization" not in headers:
                for pattern, page in PAGES:
                    match = pattern.match(scope["path"])
                    if match:
                        query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
                        kept = {k: v[0] for k, v in query.items() if k in ("token", "lang")}
                        target = page.format(code=match.group(1)) + (f"?{urlencode(kept)}" if kept else "")
                        await send({"type": "http.response.start", "status": 303,
                                    "headers": [(b"location", target.encode()), (b"content-length", b"0"),
                                                (b"cache-control", b"no-store")]})
                        await send({"type": "http.response.body", "body": b""})
                        return
        await self.app(scope, receive, send)
