"""The local Cognito bridge, over real HTTP, with boto3 pointed at it as the SDKs and Amplify would be.

The platform's own bridge serves most tests; one runs a second bridge in this
process, with a clock the test moves, to see a code expire.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import boto3
import httpx
import jwt
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from cohort import aws
from cohort.catalogue import Group
from cohort.local.accounts import create_confirmed_user
from cohort.local.cognito_bridge import CODE_TTL_SECONDS, CognitoBridge, ConfirmationCodes, create_app
from cohort.local.outbox import Outbox
from cohort.local.platform import PlatformState
from tests.asgi_server import serving

OTHER_ORIGIN = "http://127.0.0.1:9"
_CODE = re.compile(r"Your confirmation code is (\d{6})")


def _cognito(endpoint_url: str, region: str):
    # Unsigned, as the browser's Cognito client calls these operations.
    return boto3.session.Session().client(
        "cognito-idp",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )


@pytest.fixture
def bridge(platform: PlatformState):
    return _cognito(platform.cognito_url, platform.region)


def _email() -> str:
    return f"bridge-{uuid.uuid4().hex[:10]}@example.org"


def _password() -> str:
    return f"{uuid.uuid4().hex}aA1!"


def _sign_up(cognito, client_id: str, email: str, password: str, role: str = "scientist") -> dict:
    return cognito.sign_up(
        ClientId=client_id,
        Username=email,
        Password=password,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "custom:role", "Value": role}],
    )


def _code_email(outbox: Path, sub: str, n: int, timeout: float = 10.0) -> tuple[str, str]:
    """The n-th confirmation email of a user: its recipient and the code it gives."""
    path = Outbox(outbox).wait_for(f"cognito-confirmation-{sub}-{n}", timeout=timeout)
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    (code,) = _CODE.findall(message.get_content())
    return message["To"], code


def _status(platform: PlatformState, email: str) -> dict:
    """The user as the emulator holds them, read past the bridge."""
    user = aws.client("cognito-idp").admin_get_user(UserPoolId=platform.user_pool_id, Username=email)
    attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
    return {"status": user["UserStatus"], "email_verified": attributes.get("email_verified")}


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_a_sign_up_is_confirmed_with_the_code_from_the_outbox(platform: PlatformState, bridge) -> None:
    # Given a scientist who signs up through the bridge
    email, password = _email(), _password()
    signed_up = _sign_up(bridge, platform.user_pool_client_id, email, password)
    sub = signed_up["UserSub"]
    assert signed_up["UserConfirmed"] is False
    assert signed_up["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    assert signed_up["CodeDeliveryDetails"]["Destination"] == "b***@e***"

    # Then the email Cognito would send is in the outbox, with a six-digit code
    to, code = _code_email(Path(platform.outbox), sub, 1)
    assert to == email

    # When they type a wrong code
    with pytest.raises(ClientError) as refused:
        bridge.confirm_sign_up(
            ClientId=platform.user_pool_client_id, Username=email, ConfirmationCode=_wrong(code)
        )

    # Then it is refused as Cognito refuses it, and they are still unconfirmed
    assert _error(refused) == (400, "CodeMismatchException")
    assert _status(platform, email)["status"] == "UNCONFIRMED"

    # When they type the right one
    bridge.confirm_sign_up(ClientId=platform.user_pool_client_id, Username=email, ConfirmationCode=code)

    # Then they are confirmed with their email verified, and the post-confirmation trigger ran:
    # their ID token (signed in through the bridge) puts them in the scientists' group
    assert _status(platform, email) == {"status": "CONFIRMED", "email_verified": "true"}
    tokens = bridge.initiate_auth(
        ClientId=platform.user_pool_client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )["AuthenticationResult"]
    claims = jwt.decode(tokens["IdToken"], options={"verify_signature": False})
    assert claims["cognito:groups"] == ["scientists"]
    assert claims["sub"] == sub
    # and their welcome email was sent, as in the demo
    Outbox(Path(platform.outbox)).wait_for(f"welcome-{sub}", timeout=30)

    # And the code cannot confirm them a second time
    with pytest.raises(ClientError) as again:
        bridge.confirm_sign_up(ClientId=platform.user_pool_client_id, Username=email, ConfirmationCode=code)
    assert _error(again) == (400, "NotAuthorizedException")


def test_a_wrong_code_is_answered_in_cognito_s_error_shape(platform: PlatformState, bridge) -> None:
    # Given a user waiting for confirmation
    email = _email()
    sub = _sign_up(bridge, platform.user_pool_client_id, email, _password())["UserSub"]
    _, code = _code_email(Path(platform.outbox), sub, 1)

    # When the browser sends a wrong code
    response = httpx.post(
        f"{platform.cognito_url}/",
        headers={
            "X-Amz-Target": "AWSCognitoIdentityProviderService.ConfirmSignUp",
            "Content-Type": "application/x-amz-json-1.1",
            "Origin": platform.website_origin,
        },
        content=json.dumps(
            {"ClientId": platform.user_pool_client_id, "Username": email, "ConfirmationCode": _wrong(code)}
        ),
    )

    # Then the answer is Cognito's: 400, the type in a header and in the body, a message
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "CodeMismatchException"
    assert response.json() == {
        "__type": "CodeMismatchException",
        "message": "Invalid verification code provided, please try again.",
    }
    # and the page may read it
    assert response.headers["access-control-allow-origin"] == platform.website_origin
    assert "x-amzn-errortype" in response.headers["access-control-expose-headers"].lower()


def test_a_resent_code_comes_in_a_new_email_and_replaces_the_first(platform: PlatformState, bridge) -> None:
    # Given a user who signed up and asks for the code again
    email = _email()
    sub = _sign_up(bridge, platform.user_pool_client_id, email, _password())["UserSub"]
    _, first = _code_email(Path(platform.outbox), sub, 1)
    resent = bridge.resend_confirmation_code(ClientId=platform.user_pool_client_id, Username=email)

    # Then a second email holds a new code, which confirms them
    assert resent["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    _, second = _code_email(Path(platform.outbox), sub, 2)
    if first != second:  # one chance in a million that they are the same
        with pytest.raises(ClientError) as stale:
            bridge.confirm_sign_up(
                ClientId=platform.user_pool_client_id, Username=email, ConfirmationCode=first
            )
        assert _error(stale) == (400, "CodeMismatchException")
    bridge.confirm_sign_up(ClientId=platform.user_pool_client_id, Username=email, ConfirmationCode=second)
    assert _status(platform, email)["status"] == "CONFIRMED"

    # And no code is sent to a confirmed user, or to nobody
    for username, error in ((email, "InvalidParameterException"), (_email(), "UserNotFoundException")):
        with pytest.raises(ClientError) as refused:
            bridge.resend_confirmation_code(ClientId=platform.user_pool_client_id, Username=username)
        assert _error(refused) == (400, error)


def test_a_failed_trigger_is_reported_and_the_user_stays_confirmed(platform: PlatformState, bridge) -> None:
    # Given a user whose role the signup function refuses
    email = _email()
    sub = _sign_up(bridge, platform.user_pool_client_id, email, _password(), role="wizard")["UserSub"]
    _, code = _code_email(Path(platform.outbox), sub, 1)

    # When they confirm with the right code
    with pytest.raises(ClientError) as refused:
        bridge.confirm_sign_up(ClientId=platform.user_pool_client_id, Username=email, ConfirmationCode=code)

    # Then the trigger's refusal reaches them as Cognito's, and they are confirmed, in no group
    assert _error(refused) == (400, "UserLambdaValidationException")
    assert "custom:role" in refused.value.response["Error"]["Message"]
    assert _status(platform, email)["status"] == "CONFIRMED"
    groups = aws.client("cognito-idp").admin_list_groups_for_user(
        UserPoolId=platform.user_pool_id, Username=email
    )
    assert groups["Groups"] == []


def test_other_calls_pass_through_unchanged(platform: PlatformState, bridge) -> None:
    # Given a confirmed user (made past the bridge)
    email, password = _email(), _password()
    create_confirmed_user(
        platform.user_pool_id, platform.user_pool_client_id, email, password, Group.SCIENTISTS
    )

    # Then signing in, reading the user and a refusal all come back as the emulator gave them
    tokens = bridge.initiate_auth(
        ClientId=platform.user_pool_client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )["AuthenticationResult"]
    assert {
        a["Name"]: a["Value"] for a in bridge.get_user(AccessToken=tokens["AccessToken"])["UserAttributes"]
    }["email"] == email
    with pytest.raises(ClientError) as refused:
        bridge.initiate_auth(
            ClientId=platform.user_pool_client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": "not-the-password"},
        )
    assert _error(refused) == (400, "NotAuthorizedException")


def test_the_bridge_answers_cors_for_the_dashboard_only(platform: PlatformState) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            f"{platform.cognito_url}/",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": (
                    "content-type,x-amz-target,x-amz-user-agent,cache-control,"
                    "amz-sdk-invocation-id,amz-sdk-request"
                ),
            },
        )

    def initiate_auth(origin: str) -> httpx.Response:
        return httpx.post(
            f"{platform.cognito_url}/",
            headers={
                "Origin": origin,
                "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
                "Content-Type": "application/x-amz-json-1.1",
            },
            content=json.dumps(
                {
                    "ClientId": platform.user_pool_client_id,
                    "AuthFlow": "USER_PASSWORD_AUTH",
                    "AuthParameters": {"USERNAME": _email(), "PASSWORD": _password()},
                }
            ),
        )

    # Then Amplify's headers pass the dashboard's preflight, and another origin's fails
    assert (
        preflight(platform.website_origin).headers["access-control-allow-origin"] == platform.website_origin
    )
    assert "access-control-allow-origin" not in preflight(OTHER_ORIGIN).headers
    # and the emulator's own allow-any-origin header never gets through
    ours, theirs = initiate_auth(platform.website_origin), initiate_auth(OTHER_ORIGIN)
    assert ours.status_code == theirs.status_code == 400
    assert ours.headers["access-control-allow-origin"] == platform.website_origin
    assert "access-control-allow-origin" not in theirs.headers
    assert {"x-amzn-requestid", "x-amzn-errortype"} <= {
        name.strip().lower() for name in ours.headers["access-control-expose-headers"].split(",")
    }


def test_an_oversized_request_is_refused(platform: PlatformState) -> None:
    response = httpx.post(
        f"{platform.cognito_url}/",
        headers={"X-Amz-Target": "AWSCognitoIdentityProviderService.SignUp"},
        content=b"{" + b" " * (256 * 1024) + b"}",
    )

    assert response.status_code == 413


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bridge_with_clock(platform: PlatformState, tmp_path: Path) -> Iterator[tuple[str, _Clock, Path]]:
    """A second bridge, in this process, whose codes age as the test says: its URL, clock and outbox."""
    clock = _Clock()
    outbox = tmp_path / "outbox"
    bridge = CognitoBridge(
        platform.emulator_url,
        platform.user_pool_id,
        [platform.user_pool_client_id],
        Outbox(outbox),
        ConfirmationCodes(clock=clock),
    )
    with serving(create_app(bridge, [platform.website_origin])) as url:
        yield url, clock, outbox
    bridge.close()


def test_a_code_expires_after_24_hours(platform: PlatformState, bridge_with_clock) -> None:
    # Given a user who signed up a day and a second ago
    url, clock, outbox = bridge_with_clock
    cognito = _cognito(url, platform.region)
    email = _email()
    sub = _sign_up(cognito, platform.user_pool_client_id, email, _password())["UserSub"]
    _, code = _code_email(outbox, sub, 1)
    clock.now += CODE_TTL_SECONDS + 1

    # When they type the code
    with pytest.raises(ClientError) as refused:
        cognito.confirm_sign_up(ClientId=platform.user_pool_client_id, Username=email, ConfirmationCode=code)

    # Then it is refused as expired, and they are still unconfirmed
    assert _error(refused) == (400, "ExpiredCodeException")
    assert refused.value.response["Error"]["Message"] == "Invalid code provided, please request a code again."
    assert _status(platform, email)["status"] == "UNCONFIRMED"
