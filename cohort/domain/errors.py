"""Domain errors. The HTTP layer maps each to one status code, in one place."""

from __future__ import annotations

from pydantic import ValidationError


class CohortError(Exception):
    """Base class; ``message`` is written for the person who made the request."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(CohortError):
    status_code = 422


class NotFound(CohortError):
    status_code = 404


class Unauthorized(CohortError):
    status_code = 401


class Forbidden(CohortError):
    status_code = 403


class Conflict(CohortError):
    status_code = 409


class PayloadTooLarge(CohortError):
    status_code = 413


class Unavailable(CohortError):
    """A service the request needs cannot be reached now; the same request may succeed shortly.

    The HTTP answer is 503 with ``Retry-After: retry_after_seconds``.
    """

    status_code = 503
    retry_after_seconds = 5


class Busy(Unavailable):
    """Capacity is taken for now; the same request may succeed shortly."""

    retry_after_seconds = 30


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming where it is: ``layers.3.kernel_size: ...``."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "document"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
