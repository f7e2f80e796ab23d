"""Domain refusals mapped once to HTTP, in FastAPI's own error shape so clients parse one format; and
the guard that refuses oversized bodies and unstorable text before any endpoint sees them."""

import asyncio
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from python_multipart.multipart import MultipartParser, parse_options_header

from appealflow.models.refusal import Kind, Refused

# NUL cannot be stored in PostgreSQL text, and a lone surrogate cannot be encoded as UTF-8 at all.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "contains a NUL byte or an unpaired surrogate, which cannot be stored"


def _printable(value):
    """Text safe to encode: an error must never fail on what it reports."""
    return value.encode("utf-8", "replace").decode() if isinstance(value, str) else value


def _unprocessable(loc: list, message: str, kind: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [
        {"loc": [_printable(part) for part in loc], "msg": _printable(message), "type": kind}]})


def validation_errors(errors) -> list[dict]:
    """FastAPI's errors with where and what, without the input: echoing a body back can return
    18 KB for one long text, and reflects whatever the client sent."""
    return [{"loc": [_printable(part) for part in error.get("loc", ())], "msg": _printable(str(error.get("msg", ""))),
             "type": error.get("type", "value_error")} for error in errors]


STATUS = {Kind.invalid: 422, Kind.forbidden: 403, Kind.not_found: 404, Kind.conflict: 409, Kind.too_large: 413,
          Kind.unsupported: 415}


def refusal(error: Refused) -> JSONResponse:
    """Any domain refusal in FastAPI's error shape: an invalid field as a validation error naming
    where it is, anything else as its message and the facts a client needs to decide again."""
    if error.kind == Kind.invalid:
        where = [error.where, *error.field.split(".")] if error.field else [error.where]
        return _unprocessable(where, str(error), error.type)
    return JSONResponse(status_code=STATUS[error.kind], content={"detail": str(error), **error.facts()})


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": validation_errors(error.errors())})

    @app.exception_handler(Refused)  # every subclass: Starlette looks handlers up along the MRO
    async def _refused(_: Request, error: Refused):
        return refusal(error)


def _unstorable_in(value, loc: list) -> list | None:
    """Where in a parsed JSON document a string holds what cannot be stored; None if nowhere."""
    if isinstance(value, str):
        return loc if UNSTORABLE.search(value) else None
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and UNSTORABLE.search(key):
            return [*loc, key]
        if (found := _unstorable_in(item, [*loc, key])) is not None:
            return found
    return None


def _has_nul(raw: bytes) -> bool:
    return b"\x00" in unquote_to_bytes(raw)


# The filing forms (the citizen's and the hotline operator's): a body past the limit is not a bare
# 413 there. What came up to the limit is handed on, cut at the last whole field, with the scope's
# state saying so (`body_cut_at`), and the page shows the form again with what was typed and a
# message beside the text. Their handlers never file a cut form.
CUT_FORMS = ("/file", "/work/hotline")


def _whole_fields(body: bytes) -> bytes:
    """An url-encoded body cut anywhere, made parseable again: the field the cut went through (the
    long text, as a rule) is kept as far as it came, without a broken escape at its end; fields
    after it are lost."""
    text = body.decode("ascii", "replace")
    text = re.sub(r"%[0-9A-Fa-f]?$", "", text)
    return text.encode("ascii", "replace")


def _cuts(scope, headers: dict) -> bool:
    return (scope.get("method") == "POST" and scope.get("path") in CUT_FORMS
            and headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"))


def _uploads(scope, headers: dict) -> bool:
    """A body that may carry files: POST .../files, or a filing form sent as multipart (with photos)."""
    if scope.get("method") != "POST":
        return False
    return scope["path"].endswith("/files") or (
        scope["path"] in CUT_FORMS and headers.get(b"content-type", b"").startswith(b"multipart/form-data"))


class InputGuard:
    """Pure ASGI, so it sees the body as it streams: a body past `limit` bytes is answered 413 as
    soon as the count passes it, whether it declared a Content-Length or came chunked, and without
    reading the rest. What stays is buffered (at most `limit` bytes), checked for text that cannot
    be stored (NUL, lone surrogates in the path, query, JSON or form body: 422 naming where), and
    replayed to the application."""

    def __init__(self, app, limit: int, body_timeout: float = 30.0, upload_limit: int | None = None):
        self.app = app
        self.default_limit = limit
        # Files (POST .../files) come as multipart bodies of several photos: a limit of their own.
        self.upload_limit = upload_limit or limit
        self.body_timeout = body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        cuts = _cuts(scope, headers)
        limit = self.upload_limit if _uploads(scope, headers) else self.default_limit
        if length is not None and (not length.isdigit() or (int(length) > limit and not cuts)):
            return await _send(send, 413, {"detail": f"request body over {limit} bytes"})
        if _has_nul(scope.get("raw_path") or scope["path"].encode("utf-8", "replace")):
            return await _send(send, 422, {"detail": [
                {"loc": ["path"], "msg": f"the path {UNSTORABLE_MESSAGE}", "type": "value_error"}]})
        query = scope.get("query_string") or b""
        if b"%00" in query.lower() or b"\x00" in query:
            names = [name for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                     if "\x00" in value or "\x00" in name] or ["?"]
            return await _send(send, 422, {"detail": [
                {"loc": ["query", _printable(names[0])], "msg": UNSTORABLE_MESSAGE, "type": "value_error"}]})
        body = bytearray()
        more = True
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                return await _send(send, 408, {"detail": f"the request body did not arrive within "
                                                         f"{self.body_timeout:g} seconds"})
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit and cuts:
                body = bytearray(_whole_fields(bytes(body[:limit])))
                scope.setdefault("state", {})["body_cut_at"] = limit
                scope["headers"] = [(k, v) for k, v in scope.get("headers") or () if k != b"content-length"] + [
                    (b"content-length", str(len(body)).encode())]
                break
            if len(body) > limit:
                return await _send(send, 413, {"detail": f"request body over {limit} bytes"})
        where = self._unstorable_body(headers.get(b"content-type", b""), bytes(body))
        if where is not None:
            return await _send(send, 422, {"detail": [
                {"loc": [_printable(part) for part in where], "msg": UNSTORABLE_MESSAGE, "type": "value_error"}]})
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    @staticmethod
    def _unstorable_body(content_type: bytes, body: bytes) -> list | None:
        if not body:
            return None
        if b"json" in content_type:
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):
                return None  # FastAPI answers malformed JSON itself
            return _unstorable_in(document, ["body"])
        if b"x-www-form-urlencoded" in content_type:
            for name, value in parse_qsl(body.decode("utf-8", "surrogateescape"), keep_blank_values=True):
                if "\x00" in value or "\x00" in name:
                    return ["body", name]
        if b"multipart/form-data" in content_type:
            return _unstorable_multipart(content_type, body)
        return None


def _unstorable_multipart(content_type: bytes, body: bytes) -> list | None:
    """Where a multipart form's text holds a NUL: a field's name or value, or a file's name. A file's
    content may hold anything (a photo does); malformed forms are left to the form parser's 400."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        return None
    parts: list[dict] = []
    header: list[bytes] = [b"", b""]

    def begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def header_end() -> None:
        parts[-1]["headers"][header[0].lower()] = header[1]
        header[0] = header[1] = b""

    def part_data(data: bytes, start: int, end: int) -> None:
        # A text field is at most the guard's limit anyway; a file's bytes are not looked at, so
        # only their start is kept (a photo's megabytes are not copied for nothing).
        kept = parts[-1]["data"]
        if len(kept) < 70_000:
            kept += data[start:min(end, start + 70_000 - len(kept))]

    try:
        parser = MultipartParser(boundary, {"on_part_begin": begin, "on_header_field": field,
                                            "on_header_value": value, "on_header_end": header_end,
                                            "on_part_data": part_data})
        parser.write(body)
        parser.finalize()
    except Exception:
        return None
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if b"\x00" in disposition.get(b"name", b"") or b"\x00" in disposition.get(b"filename", b""):
            return ["body", name.replace("\x00", "")]
        if b"filename" not in disposition and b"\x00" in part["data"]:
            return ["body", name]
    return None


async def _send(send, status: int, content: dict) -> None:
    payload = json.dumps(content, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
