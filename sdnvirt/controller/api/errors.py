"""One shape for every refusal and failure: `{"detail": {"field", "message"}}`, plus `problems`
where a topology file is at fault (each placed at its file, line and column).

The controller's parts raise kinds of errors with no protocol in them
(sdnvirt/errors.py); here, and only here, each kind becomes an HTTP status. What
the framework refuses on its own (a body that is not JSON, an unknown path) and
anything unforeseen (a 500, logged with its traceback) get the same shape, so a
client reads every 4xx and 5xx alike and the OpenAPI document says so.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sdnvirt.errors import Conflict, Failed, Insufficient, Invalid, NotFound, SdnvirtError, TimedOut, Unavailable
from sdnvirt.model.problems import InputError

LOG = logging.getLogger(__name__)

STATUS = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Failed: 502,
    Unavailable: 503,
    TimedOut: 504,
    Insufficient: 507,
}


class ErrorDetail(BaseModel):
    field: str = Field(description="The request's part at fault, e.g. `body.vm`, `vm`, `source`, `host`")
    message: str
    problems: list[dict] = Field(default=[], description="For a topology file: every problem, placed in the file")


class ErrorBody(BaseModel):
    detail: ErrorDetail


ERROR_RESPONSES = {
    "4XX": {"model": ErrorBody, "description": "Refused; nothing was changed. `detail.field` names what is wrong: "
                                               "404 no such object, 409 not in its present state, 413 body too "
                                               "large, 422 invalid, 401 no valid token (TCP)"},
    "5XX": {"model": ErrorBody, "description": "The controller could not do it now: 502 a host or switch refused, "
                                               "503 a host, switch or database is away, 504 too slow, "
                                               "507 a host lacks memory, 500 a bug (logged)"},
}


def error_body(status: int, field: str, message: str, problems: list[dict] | None = None,
               headers: dict | None = None) -> JSONResponse:
    detail = {"field": field, "message": message} | ({"problems": problems} if problems else {})
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


def status_of(error: SdnvirtError) -> int:
    return next((status for kind, status in STATUS.items() if isinstance(error, kind)), 500)


async def _sdnvirt_error(_request: Request, error: SdnvirtError) -> JSONResponse:
    return error_body(status_of(error), error.field, str(error))


async def _input_error(_request: Request, error: InputError) -> JSONResponse:
    return error_body(422, "source", str(error), [asdict(problem) for problem in error.problems])


async def _refused(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    """Our routes give a detail naming the field; what the framework refuses on its own
    (a body that is not JSON, an unknown path or method) gets one."""
    detail = error.detail if isinstance(error.detail, dict) else {"field": "request", "message": str(error.detail)}
    return error_body(error.status_code, detail["field"], detail["message"], headers=error.headers)


async def _validation_failed(_request: Request, error: RequestValidationError) -> JSONResponse:
    errors = error.errors()
    message = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors)
    return error_body(422, _where(errors[0]["loc"]) if errors else "request", message)


async def _unforeseen(request: Request, error: Exception) -> JSONResponse:
    LOG.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return error_body(500, "request", f"the controller failed: {type(error).__name__}: {error}")


def _where(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "request"


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SdnvirtError, _sdnvirt_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(StarletteHTTPException, _refused)
    app.add_exception_handler(Exception, _unforeseen)
