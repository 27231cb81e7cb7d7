"""HTTP glue shared by the orchestrator and the FL node.

Domain errors become status codes here and nowhere else; request bodies are
read with a hard size limit; every app serves Prometheus metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter, Histogram, make_asgi_app

from cohort.domain.errors import CohortError, PayloadTooLarge, Unauthorized

REQUESTS = Counter("cohort_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("cohort_http_request_seconds", "HTTP request latency", ["service", "method", "route"])

Caller = TypeVar("Caller")

bearer_scheme = HTTPBearer(auto_error=False, description="Cognito ID token or device token")


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return credentials.credentials


def bearer_dependency(verify: Callable[[str], Caller]) -> Callable[..., Caller]:
    """A FastAPI dependency that turns the request's bearer token into a verified caller."""

    def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Caller:
        return verify(bearer_token(credentials))

    return authenticate


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {int(declared):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body passes the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def configure(app: FastAPI, service: str) -> None:
    """Error mapping, request metrics and ``/metrics`` for one app."""

    @app.exception_handler(CohortError)
    async def _domain_error(_: Request, exc: CohortError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    # FastAPI's default echoes each bad input back; an API key or a large body
    # has no business in an error response, so only say where and what.
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in exc.errors()
        ]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.middleware("http")
    async def _measure(request: Request, call_next):
        started = perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        LATENCY.labels(service, request.method, template).observe(perf_counter() - started)
        REQUESTS.labels(service, request.method, template, str(response.status_code)).inc()
        return response

    app.mount("/metrics", make_asgi_app())
