"""Sign-up on the local platform: Cognito on the emulator, then the real post-confirmation trigger.

The emulator sends no confirmation codes and runs no Cognito triggers. So once a
sign-up is confirmed, :func:`run_post_confirmation` does what Cognito would: it
marks the email verified, as confirming by code does, and invokes the signup
function's handler with the event Cognito would send it. The handler creates the
profile, adds the user to their group and queues the welcome email.

Two paths confirm: :func:`create_confirmed_user` as an administrator would (the
demo and the tests), and the Cognito bridge (``cohort.local.cognito_bridge``)
when a person types the code from their email.
"""

from __future__ import annotations

from typing import Any

from cohort import aws
from cohort.catalogue import Group
from cohort.domain.roles import ROLE_OF_GROUP
from cohort.local import lambda_runtime
from cohort.services.signup import CONFIRM_SIGN_UP, ROLE_ATTRIBUTE
from cohort.settings import get_settings


def create_confirmed_user(pool_id: str, client_id: str, email: str, password: str, group: Group) -> str:
    """Sign up, confirm and run the post-confirmation trigger; returns the user's sub."""
    cognito = aws.client("cognito-idp")
    signed_up = cognito.sign_up(
        ClientId=client_id,
        Username=email,
        Password=password,
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": ROLE_ATTRIBUTE, "Value": ROLE_OF_GROUP[group].value},
        ],
    )
    cognito.admin_confirm_sign_up(UserPoolId=pool_id, Username=email)
    run_post_confirmation(pool_id, client_id, email)
    return signed_up["UserSub"]


def run_post_confirmation(pool_id: str, client_id: str, username: str) -> None:
    """What Cognito does once a sign-up is confirmed: verify the email, then run the trigger.

    The trigger's exceptions propagate, as Cognito hands them to the client that confirmed;
    the user stays confirmed either way.
    """
    cognito = aws.client("cognito-idp")
    cognito.admin_update_user_attributes(
        UserPoolId=pool_id, Username=username, UserAttributes=[{"Name": "email_verified", "Value": "true"}]
    )
    user = cognito.admin_get_user(UserPoolId=pool_id, Username=username)
    lambda_runtime.invoke("signup", post_confirmation_event(pool_id, client_id, user))


def post_confirmation_event(pool_id: str, client_id: str, user: dict[str, Any]) -> dict[str, Any]:
    """What Cognito sends the trigger (see tests/events/post_confirmation.json), from ``AdminGetUser``."""
    attributes = {attribute["Name"]: attribute["Value"] for attribute in user["UserAttributes"]}
    return {
        "version": "1",
        "region": get_settings().aws_region,
        "userPoolId": pool_id,
        "userName": user["Username"],
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": client_id},
        "triggerSource": CONFIRM_SIGN_UP,
        "request": {"userAttributes": {**attributes, "cognito:user_status": user["UserStatus"]}},
        "response": {},
    }
