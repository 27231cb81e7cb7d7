"""The local Cognito bridge: the sign-up steps Cognito takes that the emulator does not.

The emulator's Cognito sends no confirmation code, confirms a sign-up whatever
code it is given, and runs no trigger. The bridge stands in front of its JSON
API (``POST /`` with ``X-Amz-Target: AWSCognitoIdentityProviderService.<Op>``),
forwards every call and hands the answer back unchanged, except for three
operations:

- ``SignUp``: once the emulator has created the user, a six-digit code is made,
  only a keyed hash of it is kept (in memory, for 24 hours), and the email Cognito
  would send ("Your confirmation code is ...") is written to the platform's outbox;
- ``ConfirmSignUp``: a wrong or expired code is refused as Cognito refuses it, and
  changes nothing. The right one is forwarded, then the email is marked verified and
  the real post-confirmation trigger runs (:func:`cohort.local.accounts.run_post_confirmation`);
- ``ResendConfirmationCode``, which the emulator lacks: a new code, in a new email.

The dashboard calls it straight from the browser, so it answers CORS for the
dashboard's origin only. A code is never logged. It runs as a process of its
own (``python -m cohort.local.cognito_bridge``) on a loopback port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cohort import aws
from cohort.local.accounts import run_post_confirmation
from cohort.local.outbox import Outbox
from cohort.settings import get_settings
from cohort.web.http import BodyLimit, allow_cross_origin

log = logging.getLogger(__name__)

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
CODE_TTL_SECONDS = 24 * 3600.0  # Cognito's confirmation codes are valid for 24 hours
# After this many wrong guesses a code is void, and only a new one confirms: the bridge's own
# rule, so a six-digit code cannot be guessed by trying them all.
MAX_FAILED_ATTEMPTS = 5
MAX_BODY_BYTES = 64 * 1024  # Cognito requests are small; a sign-up with every attribute is a few KiB
EMULATOR_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
COGNITO_SENDER = "no-reply@verificationemail.com"  # Cognito's default sender of verification emails
# What Amplify JS sends to Cognito besides the CORS-safelisted headers, and what it reads back.
BROWSER_HEADERS = (
    "Content-Type",
    "X-Amz-Target",
    "X-Amz-User-Agent",
    "Cache-Control",
    "Amz-Sdk-Invocation-Id",
    "Amz-Sdk-Request",
)
EXPOSED_HEADERS = ("x-amzn-RequestId", "x-amzn-ErrorType")
# The request headers the emulator needs (the operation, the body's type, an SDK's signature) ...
_FORWARDED_HEADERS = frozenset(
    {
        "content-type",
        "x-amz-target",
        "x-amz-user-agent",
        "x-amz-date",
        "x-amz-security-token",
        "authorization",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
    }
)
# ... and the answer's headers the caller gets. Not the emulator's CORS headers: it allows any origin.
_ANSWER_HEADERS = frozenset({"content-type", "x-amzn-requestid", "x-amzn-errortype", "x-amzn-errormessage"})
_SAFE_SUB = re.compile(r"^[A-Za-z0-9-]{1,64}$")
UNCONFIRMED = "UNCONFIRMED"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer in Cognito's JSON protocol."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    @classmethod
    def ok(cls, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Answer:
        return cls(200, json.dumps(payload).encode(), {**_fresh_headers(), **(headers or {})})

    @classmethod
    def error(cls, error_type: str, message: str, status: int = 400) -> Answer:
        """As Cognito refuses: the type in a header and in ``__type``, and a message."""
        body = json.dumps({"__type": error_type, "message": message}).encode()
        return cls(status, body, {**_fresh_headers(), "x-amzn-errortype": error_type})

    def json(self) -> Any:
        return json.loads(self.body)


def _fresh_headers() -> dict[str, str]:
    # Lower-case names, as the emulator's arrive (through httpx), so a merge replaces rather than doubles.
    return {"content-type": JSON_CONTENT_TYPE, "x-amzn-requestid": str(uuid.uuid4())}


class CodeCheck(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    EXPIRED = "expired"  # or never sent, or voided by too many wrong guesses


@dataclass
class _PendingCode:
    digest: bytes
    expires_at: float
    failures: int = 0


class ConfirmationCodes:
    """The codes sent and not yet used, one per user, in this process's memory.

    Only an HMAC of each is kept, under a key made for this process, so what is
    held says nothing about the codes to anyone else.
    """

    def __init__(self, ttl_seconds: float = CODE_TTL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._key = secrets.token_bytes(32)
        self._ttl_seconds = ttl_seconds
        self._clock = clock
        self._pending: dict[str, _PendingCode] = {}
        self._sent: dict[str, int] = {}
        self._lock = threading.Lock()

    def issue(self, user: str) -> tuple[str, int]:
        """A new code for ``user``, replacing theirs if any; and how many they have been sent."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        with self._lock:
            now = self._clock()
            for expired in [u for u, pending in self._pending.items() if pending.expires_at <= now]:
                del self._pending[expired]
            self._pending[user] = _PendingCode(self._digest(code), now + self._ttl_seconds)
            self._sent[user] = sent = self._sent.get(user, 0) + 1
        return code, sent

    def check(self, user: str, code: str) -> CodeCheck:
        """Whether ``code`` is the user's current one; a match is used up by :meth:`discard`."""
        with self._lock:
            pending = self._pending.get(user)
            if pending is None or self._clock() >= pending.expires_at:
                self._pending.pop(user, None)
                return CodeCheck.EXPIRED
            if hmac.compare_digest(pending.digest, self._digest(code)):
                return CodeCheck.MATCH
            pending.failures += 1
            if pending.failures >= MAX_FAILED_ATTEMPTS:
                del self._pending[user]
            return CodeCheck.MISMATCH

    def discard(self, user: str) -> None:
        with self._lock:
            self._pending.pop(user, None)

    def _digest(self, code: str) -> bytes:
        return hmac.new(self._key, code.encode(), hashlib.sha256).digest()


def confirmation_email(to: str, code: str) -> bytes:
    """The email Cognito sends by default to confirm a sign-up, as raw MIME."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = COGNITO_SENDER
    message["To"] = to  # the email policy refuses a line break in a header
    message["Subject"] = "Your verification code"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain="cohort.local")
    message.set_content(f"Your confirmation code is {code}\n")
    return message.as_bytes()


def email_file_name(sub: str, sent: int) -> str:
    """``cognito-confirmation-<sub>-<n>``: the user's n-th code; a sub unfit for a file name is hashed."""
    safe = sub if _SAFE_SUB.match(sub) else hashlib.sha256(sub.encode()).hexdigest()[:32]
    return f"cognito-confirmation-{safe}-{sent}"


@dataclass(frozen=True)
class _SignUpRequest:
    client_id: str
    username: str  # as the caller gave it: the email, in a pool that signs in by email
    user: dict[str, Any]  # AdminGetUser's answer
    code: str

    @property
    def sub(self) -> str:
        return _sub(self.user)


# Cognito's refusals of a code that is not the user's current one.
_CODE_REFUSALS = {
    CodeCheck.MISMATCH: ("CodeMismatchException", "Invalid verification code provided, please try again."),
    CodeCheck.EXPIRED: ("ExpiredCodeException", "Invalid code provided, please request a code again."),
}


class CognitoBridge:
    """Cognito's JSON API over the emulator's, with the sign-up steps the emulator skips."""

    def __init__(
        self,
        emulator_url: str,
        pool_id: str,
        client_ids: Sequence[str],
        outbox: Outbox,
        codes: ConfirmationCodes | None = None,
    ) -> None:
        self._emulator = httpx.Client(base_url=emulator_url, timeout=EMULATOR_TIMEOUT)
        self._pool_id = pool_id
        self._client_ids = frozenset(client_ids)
        self._outbox = outbox
        self._codes = codes or ConfirmationCodes()
        # One confirmation at a time: a code is checked and used up with no other in between.
        self._confirming = threading.Lock()

    def close(self) -> None:
        self._emulator.close()

    def handle(self, headers: Mapping[str, str], body: bytes) -> Answer:
        target = headers.get("x-amz-target", "")
        operation = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
        special = {
            "SignUp": self._sign_up,
            "ConfirmSignUp": self._confirm_sign_up,
            "ResendConfirmationCode": self._resend_code,
        }.get(operation)
        return special(headers, body) if special else self._forward(headers, body)

    # -- the three operations ---------------------------------------------------------------
    def _sign_up(self, headers: Mapping[str, str], body: bytes) -> Answer:
        answer = self._forward(headers, body)
        params = _json_object(body) or {}
        if answer.status != 200 or params.get("ClientId") not in self._client_ids:
            return answer
        signed_up = answer.json()
        user = self._user(str(signed_up.get("UserSub", "")))
        if user is None or user["UserStatus"] != UNCONFIRMED:
            return answer
        # The emulator's delivery details name an SMS it never sent; the code went by email.
        return Answer.ok({**signed_up, "CodeDeliveryDetails": self._send_code(user)}, _kept(answer))

    def _confirm_sign_up(self, headers: Mapping[str, str], body: bytes) -> Answer:
        with self._confirming:
            request = self._pending_sign_up(body, with_code=True)
            if isinstance(request, Answer):
                return request
            verdict = self._codes.check(request.sub, request.code)
            if verdict is not CodeCheck.MATCH:
                log.info("ConfirmSignUp of user %s refused: %s code", request.sub, verdict)
                return Answer.error(*_CODE_REFUSALS[verdict])
            answer = self._forward(headers, body)
            if answer.status == 200:
                self._codes.discard(request.sub)
                log.info("user %s confirmed", request.sub)
                answer = self._post_confirmation(request) or answer
            return answer

    def _post_confirmation(self, request: _SignUpRequest) -> Answer | None:
        """Run the trigger; Cognito's refusal if it failed (the user stays confirmed), else None."""
        try:
            run_post_confirmation(self._pool_id, request.client_id, request.username)
        except Exception as exc:
            log.warning("the post-confirmation trigger failed for user %s", request.sub, exc_info=True)
            reason = getattr(exc, "message", None) or str(exc)
            return Answer.error(
                "UserLambdaValidationException", f"PostConfirmation failed with error {reason}."
            )
        return None

    def _resend_code(self, _: Mapping[str, str], body: bytes) -> Answer:
        request = self._pending_sign_up(body, with_code=False)
        if isinstance(request, Answer):
            return request
        return Answer.ok({"CodeDeliveryDetails": self._send_code(request.user)})

    def _pending_sign_up(self, body: bytes, *, with_code: bool) -> _SignUpRequest | Answer:
        """The request's client, user and code, for a user yet to confirm; or Cognito's refusal."""
        params = _json_object(body) or {}
        names = ["ClientId", "Username", *(["ConfirmationCode"] if with_code else [])]
        values = [params.get(name) for name in names]
        if not all(isinstance(value, str) and value for value in values):
            return Answer.error(
                "InvalidParameterException", f"a JSON object with {', '.join(names)} is required"
            )
        client_id, username = values[0], values[1]
        if client_id not in self._client_ids:
            return Answer.error("ResourceNotFoundException", f"User pool client {client_id} does not exist.")
        user = self._user(username)
        if user is None:
            return Answer.error("UserNotFoundException", "Username/client id combination not found.")
        if user["UserStatus"] != UNCONFIRMED:
            # Cognito's words differ: confirming a confirmed user is not authorized, resending is invalid.
            if with_code:
                refusal = (
                    "NotAuthorizedException",
                    f"User cannot be confirmed. Current status is {user['UserStatus']}",
                )
            else:
                refusal = ("InvalidParameterException", "User is already confirmed.")
            return Answer.error(*refusal)
        return _SignUpRequest(client_id, username, user, values[2] if with_code else "")

    # -- pieces ---------------------------------------------------------------------------
    def _send_code(self, user: Mapping[str, Any]) -> dict[str, str]:
        """A new code for the user, in an email in the outbox; what Cognito says of its delivery."""
        sub, email = _sub(user), _attributes(user)["email"]
        code, sent = self._codes.issue(sub)
        self._outbox.write(email_file_name(sub, sent), confirmation_email(email, code))
        log.info("confirmation code %d of user %s written to the outbox", sent, sub)
        return {"Destination": _masked(email), "DeliveryMedium": "EMAIL", "AttributeName": "email"}

    def _user(self, username: str) -> dict[str, Any] | None:
        cognito = aws.client("cognito-idp")
        try:
            return cognito.admin_get_user(UserPoolId=self._pool_id, Username=username)
        except cognito.exceptions.UserNotFoundException:
            return None

    def _forward(self, headers: Mapping[str, str], body: bytes) -> Answer:
        forwarded = {name: value for name, value in headers.items() if name.lower() in _FORWARDED_HEADERS}
        try:
            response = self._emulator.post("/", content=body, headers=forwarded)
        except httpx.HTTPError as exc:
            log.warning("the emulator did not answer: %s", exc)
            return Answer.error(
                "InternalErrorException", "the local Cognito (the AWS emulator) did not answer", 502
            )
        kept = {name: value for name, value in response.headers.items() if name.lower() in _ANSWER_HEADERS}
        return Answer(response.status_code, response.content, kept)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _kept(answer: Answer) -> dict[str, str]:
    """The emulator's request id, so a rewritten answer still names the call it answers."""
    return {
        name.lower(): value for name, value in answer.headers.items() if name.lower() == "x-amzn-requestid"
    }


def _attributes(user: Mapping[str, Any]) -> dict[str, str]:
    return {attribute["Name"]: attribute["Value"] for attribute in user["UserAttributes"]}


def _sub(user: Mapping[str, Any]) -> str:
    return _attributes(user).get("sub") or user["Username"]


def _masked(email: str) -> str:
    """As Cognito shows where a code went: ``a***@e***``."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain[:1]}***"


def create_app(bridge: CognitoBridge, allowed_origins: Sequence[str]) -> Starlette:
    async def cognito_api(request: Request) -> Response:
        body = await request.body()
        # The emulator, the outbox and the trigger are all blocking: a worker thread takes them.
        answer = await run_in_threadpool(bridge.handle, request.headers, body)
        return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/", cognito_api, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])],
        middleware=[Middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)],
    )
    allow_cross_origin(
        app, allowed_origins, methods=["POST"], headers=BROWSER_HEADERS, expose_headers=EXPOSED_HEADERS
    )
    return app


def main(
    port: Annotated[int, typer.Option(help="Loopback port to listen on")],
    outbox: Annotated[Path, typer.Option(help="Folder the confirmation emails are written to")],
) -> None:
    """Serve the bridge until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    if not settings.aws_endpoint_url:
        raise typer.BadParameter("the bridge fronts the AWS emulator: set AWS_ENDPOINT_URL to its URL")
    bridge = CognitoBridge(
        settings.aws_endpoint_url, settings.user_pool_id, settings.user_pool_client_ids, Outbox(outbox)
    )
    log.info("Cognito bridge on port %d in front of %s; outbox %s", port, settings.aws_endpoint_url, outbox)
    try:
        uvicorn.run(
            create_app(bridge, settings.allowed_origins), host="127.0.0.1", port=port, log_level="warning"
        )
    finally:
        bridge.close()


if __name__ == "__main__":
    typer.run(main)
