"""Pages call the JSON API in-process, the same endpoints any client uses: its validation, rules,
rate limits (keyed on the visitor's own address) and refusals come along, and a page adds none of its
own. No network hop: httpx talks to the application object directly."""

import httpx
from fastapi import Request

from appealflow.api import ratelimit


class Unavailable(Exception):
    """The API answered 503 (the database or Redis is unreachable): the page says to try again shortly."""

    def __init__(self, service: str):
        super().__init__(service)
        self.service = service


class Api:
    def __init__(self, request: Request, token: str | None = None):
        self.request = request
        self.token = token

    async def __call__(self, method: str, url: str, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # As bytes: HTTP headers are Latin-1 on the wire, and the browser's may hold any byte; as text
        # httpx would only take ASCII, and the page would fail on a header the API reads fine.
        headers.setdefault("Accept-Language", self.request.headers.get("accept-language", "").encode("latin-1"))
        transport = httpx.ASGITransport(app=self.request.app, client=(ratelimit.client_ip(self.request), 0))
        base = str(self.request.base_url).rstrip("/")
        async with httpx.AsyncClient(transport=transport, base_url=base, timeout=30) as client:
            response = await client.request(method, url, headers=headers, **kwargs)
        if response.status_code == 503:
            try:
                service = str(response.json().get("unavailable") or "service")
            except ValueError:
                service = "service"
            raise Unavailable(service)
        return response

    async def get(self, url: str, **kwargs) -> httpx.Response:
        return await self("GET", url, **kwargs)

    async def post(self, url: str, **kwargs) -> httpx.Response:
        return await self("POST", url, **kwargs)

    async def put(self, url: str, **kwargs) -> httpx.Response:
        return await self("PUT", url, **kwargs)

    async def delete(self, url: str, **kwargs) -> httpx.Response:
        return await self("DELETE", url, **kwargs)


async def upload_parts(files) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The files a page form carried (empty file inputs left out), as the API's multipart `files`."""
    return [("files", (f.filename, await f.read(), f.content_type or "application/octet-stream"))
            for f in files or [] if f.filename]


# Why the API refused an upload, as the pages' catalogue says it.
UPLOAD_REFUSALS = {413: "files.too_large", 415: "files.unsupported", 409: "files.closed"}


def field_errors(response: httpx.Response) -> dict[str, str]:
    """A 422's errors by field name (the last part of `loc`), for showing next to each field."""
    errors: dict[str, str] = {}
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):
        for item in detail:
            loc = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "header")]
            errors.setdefault(".".join(loc) or "form", str(item.get("msg", "")))
    else:
        errors["form"] = str(detail or response.text[:300])
    return errors
