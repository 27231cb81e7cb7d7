"""Domain errors. The HTTP layer maps each to one status code, in one place."""

from __future__ import annotations

from pydantic import ValidationError


class CohortError(Exception):
    """Base class; ``message`` is written for the person who made the request."""

    status_code = 400
    # Seconds until the same request may succeed, sent as Retry-After; None when retrying won't help.
    retry_after: int | None = None

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after is not None:
            self.retry_after = retry_after


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


class TooManyRequests(CohortError):
    """The caller is over a limit of theirs; the message says which, and how to get under it."""

    status_code = 429


class Unavailable(CohortError):
    """A service the request needs cannot be reached now; the same request may succeed shortly.

    The HTTP answer is 503 with ``Retry-After: retry_after``.
    """

    status_code = 503
    retry_after = 5


class Busy(Unavailable):
    """Capacity is taken for now; the same request may succeed shortly."""

    retry_after = 30


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming where it is: ``layers.3.kernel_size: ...``."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "document"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
