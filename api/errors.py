"""Domain refusals mapped once to HTTP, in FastAPI's own error shape so clients parse one format."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from appealflow.models.intake import IdempotencyConflict, IntakeError
from appealflow.models.lifecycle import IllegalTransition, NotPermitted
from appealflow.models.queue import BadCursor
from appealflow.models.workbench import ActionRefused, NotYourDepartment, StaleVersion


def _unprocessable(loc: list[str], message: str, kind: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"loc": loc, "msg": message, "type": kind}]})


def install(app: FastAPI) -> None:
    @app.exception_handler(IntakeError)
    async def _intake(_: Request, error: IntakeError):
        return _unprocessable(["body", *error.field.split(".")], str(error), "value_error")

    @app.exception_handler(ActionRefused)
    async def _refused(_: Request, error: ActionRefused):
        return _unprocessable(["body", error.field], str(error), "value_error")

    @app.exception_handler(BadCursor)
    async def _cursor(_: Request, error: BadCursor):
        return _unprocessable(["query", "cursor"], str(error), "value_error")

    @app.exception_handler(NotPermitted)
    async def _forbidden(_: Request, error: NotPermitted):
        return JSONResponse(status_code=403, content={"detail": str(error)})

    @app.exception_handler(NotYourDepartment)
    async def _not_yours(_: Request, error: NotYourDepartment):
        return JSONResponse(status_code=403, content={"detail": str(error)})

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, error: IllegalTransition):
        return JSONResponse(status_code=409, content={"detail": str(error), "status": error.status,
                                                      "version": error.version})

    @app.exception_handler(StaleVersion)
    async def _stale(_: Request, error: StaleVersion):
        return JSONResponse(status_code=409, content={
            "detail": f"the appeal changed since you saw it: {error}", "status": error.status,
            "version": error.version})

    @app.exception_handler(IdempotencyConflict)
    async def _idempotency(_: Request, error: IdempotencyConflict):
        return _unprocessable(["header", "Idempotency-Key"], str(error), "idempotency_conflict")
