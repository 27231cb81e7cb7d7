"""HTTP glue shared by the orchestrator, the FL node and the local platform's servers.

Domain errors become status codes here and nowhere else, and every refusal has one body,
``ErrorBody``, which both services' OpenAPI documents for every status each route can return;
request bodies have a hard size limit; every app serves Prometheus metrics; browsers are let in
from the listed origins only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from time import perf_counter
from typing import Annotated, Any, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as AwsConnectionError
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter, Histogram, make_asgi_app
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pynamodb.exceptions import PynamoDBException
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cohort.domain.errors import CohortError, PayloadTooLarge, Unauthorized, Unavailable
from cohort.domain.identifiers import Identifier

log = logging.getLogger(__name__)

REQUESTS = Counter("cohort_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("cohort_http_request_seconds", "HTTP request latency", ["service", "method", "route"])

Caller = TypeVar("Caller")

# Browsers cache a preflight this long (Chromium caps it at 2 hours), so polling the API costs one request.
CORS_MAX_AGE_SECONDS = 7200

bearer_scheme = HTTPBearer(auto_error=False, description="Cognito ID token or device token")

# A validation error's detail names this many problems; `errors` holds them all.
_PROBLEMS_IN_DETAIL = 10
# AWS's words for "too many requests now" and "down now": the same request may succeed shortly.
_TRANSIENT_AWS_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "SlowDown",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalError",
        "503",
    }
)


class Problem(BaseModel):
    """One problem with a request that failed validation."""

    loc: list[str | int] = Field(
        description="Where: 'body', 'query', 'path' or 'header', then the path to the field inside it"
    )
    msg: str = Field(description="What is wrong with it")
    type: str = Field(description="The kind of problem, such as 'missing' or 'string_too_short'")


class ErrorBody(BaseModel):
    """Every refusal (4xx) and every failure (5xx) of both services has this body."""

    # Clients read `errors` without checking that it is there.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    detail: str = Field(description="What went wrong and what to do next, in words for a person")
    errors: list[Problem] = Field(
        default_factory=list,
        description="For a request that failed validation (422), each problem and where it is; else empty",
    )


def error_response(
    status_code: int,
    detail: str,
    errors: Sequence[Problem] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(detail=detail, errors=list(errors))
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


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


def configure(
    app: FastAPI,
    service: str,
    max_body_bytes: int,
    rule_statuses: Mapping[str, Collection[int]] | None = None,
) -> None:
    """Error answers and their documentation, a body size limit, request metrics and ``/metrics``.

    ``rule_statuses`` names the error statuses only the use cases know (see ``document_errors``).
    """
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    _answer_errors(app)
    document_errors(app, rule_statuses or {})

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


def _answer_errors(app: FastAPI) -> None:
    """Every error path answers an ``ErrorBody``: domain errors, invalid requests, unknown routes,
    dependencies that are down, and bugs."""

    @app.exception_handler(CohortError)
    async def _domain_error(_: Request, exc: CohortError) -> JSONResponse:
        headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status_code, exc.message, headers=headers)

    # FastAPI's default echoes each bad input back; an API key or a large body
    # has no business in an error response, so only say where and what.
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [Problem(loc=list(e["loc"]), msg=e["msg"], type=e["type"]) for e in exc.errors()]
        return error_response(422, _summary(problems), problems)

    # The framework's own refusals: a path no route has (404), a method the route does not take
    # (405), and a body FastAPI cannot decode (400), which is as invalid as malformed JSON (422).
    @app.exception_handler(HTTPException)
    async def _framework_refusal(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:
            problem = Problem(loc=["body"], msg="the body is not JSON in UTF-8", type="json_invalid")
            return error_response(422, _summary([problem]), [problem])
        if exc.status_code == 404:
            detail = f"there is no {request.url.path}; the routes are listed in the API's OpenAPI document"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; it takes {exc.headers['Allow']}"
        else:
            detail = str(exc.detail)
        return error_response(exc.status_code, detail, headers=exc.headers)

    # DynamoDB, S3 or SQS down or throttling: the request may succeed shortly, so 503, not a bug.
    @app.exception_handler(ClientError)
    @app.exception_handler(HTTPClientError)
    @app.exception_handler(AwsConnectionError)
    @app.exception_handler(PynamoDBException)
    async def _dependency_error(request: Request, exc: Exception) -> JSONResponse:
        if not dependency_unavailable(exc):
            raise exc
        log.warning("%s %s: a dependency is unavailable: %s", request.method, request.url.path, exc)
        return error_response(
            503,
            "a service the platform depends on is unavailable for now; try again shortly",
            headers={"Retry-After": str(Unavailable.retry_after)},
        )

    # Anything else is a bug: Starlette re-raises it after this answer, and the server logs it.
    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "the service failed on this request; its log says why")


# What each error status means, in every operation that can answer it.
ERROR_STATUSES: dict[int, str] = {
    401: "No valid bearer token: sign in again (a device exchanges its API key for a new token)",
    403: "The caller may not do this: another role's action, or another app's job",
    404: "No such resource, or it is not the caller's",
    409: "The resource is not in a state that allows this; `detail` says what it waits for",
    413: "The request body is larger than the service takes",
    422: "The request is invalid: `detail` says why, and `errors` names each field's problem",
    429: "A quota is reached: `detail` names the limit and how to raise it",
    503: "A service the platform depends on is unavailable, or its capacity is taken: "
    "send the same request again after `Retry-After` seconds",
}
_SCHEMA_REF = "#/components/schemas/{model}"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_TEMPLATE_PARAMETER = re.compile(r"\{([^}/]+)\}")
_IDENTIFIER_SCHEMA = TypeAdapter(Identifier).json_schema()


def document_errors(app: FastAPI, rule_statuses: Mapping[str, Collection[int]]) -> None:
    """Document, in the app's OpenAPI, every error status each operation can answer, all as ``ErrorBody``.

    Most statuses follow from what an operation has: every one can meet a dependency that is down
    (503); an authenticated one a missing or wrong token (401, 403); a path parameter a missing
    resource (404); a body the size limit (413); any input a validation error (422, which replaces
    FastAPI's own schema for it). A use case's own rules (a conflict, a quota) are named in
    ``rule_statuses`` by operation, as ``"POST /v1/jobs"``. A path parameter that the path holds but
    its handler does not read (the node's job id, baked into its prefix) is declared too, so the
    document stays valid OpenAPI.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            operations = dict(_operations(document))
            unknown = rule_statuses.keys() - operations.keys()
            if unknown:
                raise ValueError(f"rule_statuses names operations the app does not have: {sorted(unknown)}")
            for name, (path, operation) in operations.items():
                _declare_path_parameters(path, operation)
                statuses = _statuses_by_shape(operation) | set(rule_statuses.get(name, ()))
                errors = {str(status): _error_response(status) for status in sorted(statuses)}
                operation["responses"].update(errors)
            _publish_error_schemas(document.setdefault("components", {}).setdefault("schemas", {}))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, tuple[str, dict[str, Any]]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in _HTTP_METHODS:
                yield f"{method.upper()} {path}", (path, operation)


def _declare_path_parameters(path: str, operation: dict[str, Any]) -> None:
    declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
    undeclared = [name for name in _TEMPLATE_PARAMETER.findall(path) if name not in declared]
    operation.setdefault("parameters", [])[:0] = [
        {"name": name, "in": "path", "required": True, "schema": _IDENTIFIER_SCHEMA} for name in undeclared
    ]


def _statuses_by_shape(operation: dict[str, Any]) -> set[int]:
    statuses = {503}
    if operation.get("security"):
        statuses |= {401, 403}
    if any(p["in"] == "path" for p in operation.get("parameters", [])):
        statuses.add(404)
    if "requestBody" in operation:
        statuses.add(413)
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(422)
    return statuses


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_STATUSES[status],
        "content": {"application/json": {"schema": {"$ref": _SCHEMA_REF.format(model="ErrorBody")}}},
    }
    if status == 503:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before sending the same request again",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def _publish_error_schemas(schemas: dict[str, Any]) -> None:
    # FastAPI's validation error schemas describe a body this API never sends.
    for replaced in ("HTTPValidationError", "ValidationError"):
        schemas.pop(replaced, None)
    error = ErrorBody.model_json_schema(mode="serialization", ref_template=_SCHEMA_REF)
    parts = {**error.pop("$defs", {}), "ErrorBody": error}
    clashes = parts.keys() & schemas.keys()
    if clashes:
        raise RuntimeError(f"the error body's schemas clash with the API's: {sorted(clashes)}")
    schemas.update(parts)


def dependency_unavailable(exc: BaseException) -> bool:
    """Whether the error, or any error behind it, is AWS unreachable, timing out or throttling."""
    for cause in _causes(exc):
        if isinstance(cause, (AwsConnectionError, HTTPClientError)):
            return True
        if (
            isinstance(cause, ClientError)
            and cause.response.get("Error", {}).get("Code") in _TRANSIENT_AWS_CODES
        ):
            return True
    return False


def _causes(exc: BaseException) -> Iterator[BaseException]:
    # pynamodb keeps the botocore error as `cause` as well as in the exception chain.
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None)]


def _summary(problems: Sequence[Problem]) -> str:
    """'body.model_id: String should have at least 1 character; query.loss: ...' for a person."""
    said = [
        f"{'.'.join(str(part) for part in p.loc)}: {p.msg.removeprefix('Value error, ')}"
        for p in problems[:_PROBLEMS_IN_DETAIL]
    ]
    more = len(problems) - len(said)
    return "; ".join(said) + (f"; and {more} more problems, listed in errors" if more > 0 else "")


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
