"""One shape for every refusal: `{"detail": {"field", "message"}}`, plus `problems` where a
topology file is at fault (each placed at its file, line and column).

FastAPI's own request validation answers in another shape (a list of pydantic
errors); it is turned into this one, naming the first field at fault, so a
client reads every 4xx and 5xx the same way and the OpenAPI document says so.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorDetail(BaseModel):
    field: str = Field(description="The request's part at fault, e.g. `body.vm`, `vm`, `source`")
    message: str
    problems: list[dict] = Field(default=[], description="For a topology file: every problem, placed in the file")


class ErrorBody(BaseModel):
    detail: ErrorDetail


ERROR_RESPONSES = {
    "4XX": {"model": ErrorBody, "description": "Refused; nothing was changed. `detail.field` names what is wrong"},
    "5XX": {"model": ErrorBody, "description": "The controller could not do it now (a host or switch away, "
                                               "a timeout)"},
}


def _where(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "request"


async def refused(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    """Our routes give a detail naming the field; what the framework refuses on its own
    (a body that is not JSON, an unknown path or method) gets one."""
    detail = error.detail if isinstance(error.detail, dict) else {"field": "request", "message": str(error.detail)}
    return JSONResponse(status_code=error.status_code, content={"detail": detail}, headers=error.headers)


async def validation_failed(_request: Request, error: RequestValidationError) -> JSONResponse:
    errors = error.errors()
    message = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors)
    field = _where(errors[0]["loc"]) if errors else "request"
    return JSONResponse(status_code=422, content={"detail": {"field": field, "message": message}})
