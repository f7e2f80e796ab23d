"""Domain refusals mapped once to HTTP, in FastAPI's own error shape so clients parse one format."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from models.intake import IdempotencyConflict, IntakeError


def _unprocessable(loc: list[str], message: str, kind: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"loc": loc, "msg": message, "type": kind}]})


def install(app: FastAPI) -> None:
    @app.exception_handler(IntakeError)
    async def _intake(_: Request, error: IntakeError):
        return _unprocessable(["body", *error.field.split(".")], str(error), "value_error")

    @app.exception_handler(IdempotencyConflict)
    async def _idempotency(_: Request, error: IdempotencyConflict):
        return _unprocessable(["header", "Idempotency-Key"], str(error), "idempotency_conflict")
