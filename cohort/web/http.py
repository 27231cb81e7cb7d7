"""HTTP glue shared by the orchestrator, the FL node and the local platform's servers.

Domain errors become status codes here and nowhere else; request bodies have
a hard size limit; every app serves Prometheus metrics; browsers are let in
from the listed origins only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter, Histogram, make_asgi_app
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cohort.domain.errors import CohortError, PayloadTooLarge, Unauthorized

REQUESTS = Counter("cohort_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("cohort_http_request_seconds", "HTTP request latency", ["service", "method", "route"])

Caller = TypeVar("Caller")

# Browsers cache a preflight this long (Chromium caps it at 2 hours), so polling the API costs one request.
CORS_MAX_AGE_SECONDS = 7200

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


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413, and the app never sees it.

    FastAPI reads JSON bodies whole and unbounded, and turns errors raised while reading into a vague
    400; so when the app first asks for the body, it is read here, with the limit applied as it
    arrives, and handed on as one message. Nothing is read before the app asks: a request refused
    first (no token, say) costs no more than the server's own small buffer.

    A route with a limit of its own (:func:`own_body_limit`) gets its body as it arrives instead,
    counted against that limit, to stream it or to answer without reading it. Whichever the route, an
    answer sent before the whole body was read closes the connection, so the rest is never received.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        body = _RequestBody(scope, receive, send, self._max_bytes)
        await self._app(scope, body.receive, body.send)


Endpoint = TypeVar("Endpoint", bound=Callable[..., object])


def own_body_limit(max_bytes: int) -> Callable[[Endpoint], Endpoint]:
    """Give a route's endpoint a body limit of its own, in place of the app's, and its body as it
    arrives rather than read whole first (see :class:`BodyLimit`); for a route that streams its body."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _OWN_BODY_LIMIT, max_bytes)
        return endpoint

    return mark


_OWN_BODY_LIMIT = "cohort_own_body_limit"


class _RequestBody:
    """One request's body, read when the app asks for it (see :class:`BodyLimit`)."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        self._scope, self._receive, self._send, self._max_bytes = scope, receive, send, max_bytes
        headers = Headers(scope=scope)
        self._declared = headers.get("content-length", "")
        self._received_all = self._declared in ("", "0") and "transfer-encoding" not in headers
        self._size = 0
        self._whole: list[Message] | None = None  # once read whole, for a route without its own limit
        self._streamed = False

    async def receive(self) -> Message:
        if self._whole is None and not self._streamed:
            self._first_read()
            if not self._streamed:
                self._whole = [await self._read_whole()]
        if self._whole:
            return self._whole.pop()
        return await self._next()

    def _first_read(self) -> None:
        # The router has matched the request's route by the time the app asks for its body.
        endpoint = getattr(self._scope.get("route"), "endpoint", None)
        own_limit = getattr(endpoint, _OWN_BODY_LIMIT, None)
        if own_limit is not None:
            self._streamed, self._max_bytes = True, own_limit
        if self._declared.isdigit() and int(self._declared) > self._max_bytes:
            raise self._too_large(f"the body is {int(self._declared):,} bytes")

    async def _next(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self._received_all = True
            return message
        self._size += len(message.get("body", b""))
        if self._size > self._max_bytes:
            raise self._too_large("the body passes the limit")
        self._received_all = not message.get("more_body", False)
        return message

    async def _read_whole(self) -> Message:
        chunks = []
        while True:
            message = await self._next()
            if message["type"] == "http.disconnect":
                return message
            chunks.append(message.get("body", b""))
            if self._received_all:
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    def _too_large(self, what: str) -> HTTPException:
        # Raised into the app's read, so the app's own error handling answers it, as any 4xx.
        return HTTPException(413, f"{what}; the limit is {self._max_bytes:,} bytes")

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self._received_all:
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await self._send(message)


async def read_body(request: Request, max_bytes: int, *, what: str) -> bytearray:
    """The request's body as it arrives, refused (413) as soon as it is known to pass ``max_bytes``:
    for a route with :func:`own_body_limit`, whose body is streamed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"{what} is at most {max_bytes:,} bytes; this body is {int(declared):,}")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > max_bytes:
            raise PayloadTooLarge(f"{what} is at most {max_bytes:,} bytes; this body is longer")
    return received


def configure(app: FastAPI, service: str, max_body_bytes: int) -> None:
    """Error mapping, a body size limit, request metrics and ``/metrics`` for one app."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(CohortError)
    async def _domain_error(_: Request, exc: CohortError) -> JSONResponse:
        headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)

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


def allow_cross_origin(
    app: Starlette,
    origins: Sequence[str],
    *,
    methods: Sequence[str],
    headers: Sequence[str],
    expose_headers: Sequence[str] = (),
) -> None:
    """Answer CORS for exactly ``origins``; any other origin gets no Access-Control-Allow-Origin.

    Added last, so it wraps every other middleware: error responses (401, 404, 413, 422...)
    carry the header too, and the browser lets the page read why a call failed. No credentials:
    callers authenticate with a bearer header, never a cookie.
    """
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=list(methods),
        allow_headers=list(headers),
        expose_headers=list(expose_headers),
        allow_credentials=False,
        max_age=CORS_MAX_AGE_SECONDS,
    )
