"""The signup function (Cognito's post-confirmation trigger) on moto, with the recorded event."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from cohort import aws
from cohort.catalogue import Group
from cohort.domain.errors import InvalidInput
from cohort.domain.records import UserRecord
from cohort.local import lambda_runtime
from cohort.local.provision import UserPool
from cohort.services.signup import InvalidRole

from .functions import queued_notifications, recorded_event, sent_emails, sqs_event


def _confirmed_user(pool: UserPool, role: str) -> dict[str, Any]:
    """A new user signed up and confirmed on moto's pool, and the recorded event rewritten for them."""
    email = f"ada-{uuid.uuid4().hex[:8]}@example.org"
    cognito = aws.client("cognito-idp")
    sub = cognito.sign_up(
        ClientId=pool.client_id,
        Username=email,
        Password="Str0ng!Passw0rd",
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "custom:role", "Value": role}],
    )["UserSub"]
    cognito.admin_confirm_sign_up(UserPoolId=pool.pool_id, Username=email)
    event = recorded_event("post_confirmation")
    event.update(userPoolId=pool.pool_id, userName=sub)
    event["callerContext"]["clientId"] = pool.client_id
    event["request"]["userAttributes"].update({"sub": sub, "email": email, "custom:role": role})
    return event


def _groups(pool: UserPool, user_name: str) -> list[str]:
    groups = aws.client("cognito-idp").admin_list_groups_for_user(UserPoolId=pool.pool_id, Username=user_name)
    return [group["GroupName"] for group in groups["Groups"]]


@pytest.mark.parametrize(
    ("attribute", "role", "group"),
    [
        ("scientist", "scientist", Group.SCIENTISTS),
        ("app_developer", "app_developer", Group.APP_DEVELOPERS),
        ("app-developers", "app_developer", Group.APP_DEVELOPERS),  # a group's name works too
    ],
)
def test_a_confirmed_sign_up_gets_a_profile_a_group_and_a_welcome_email(
    account: UserPool, attribute: str, role: str, group: Group
) -> None:
    # Given the event Cognito sends once a user has confirmed their sign-up
    event = _confirmed_user(account, attribute)
    original = copy.deepcopy(event)

    # When the signup function handles it
    returned = lambda_runtime.invoke("signup", event)

    # Then Cognito gets its event back unchanged
    assert returned == original
    # and the user has a profile with their role, and belongs to the role's group
    sub, email = event["request"]["userAttributes"]["sub"], event["request"]["userAttributes"]["email"]
    profile = UserRecord.get(sub)
    assert (profile.email, profile.role) == (email, role)
    assert _groups(account, event["userName"]) == [group.value]
    # and one welcome email waits on the notifications queue, its id derived from the user
    assert queued_notifications() == [
        {
            "notification_id": f"welcome-{sub}",
            "to": email,
            "attachments": [],
            "kind": "welcome",
            "role": role,
        }
    ]


def test_a_retried_confirmation_creates_nothing_twice_and_sends_one_welcome(account: UserPool) -> None:
    # Given a confirmation the signup function has handled once
    event = _confirmed_user(account, "scientist")
    lambda_runtime.invoke("signup", event)
    sub = event["request"]["userAttributes"]["sub"]
    created_at = UserRecord.get(sub).created_at

    # When Cognito retries the same event
    lambda_runtime.invoke("signup", event)

    # Then the profile is the first one, the user is in the group once
    assert UserRecord.get(sub).created_at == created_at
    assert _groups(account, event["userName"]) == [Group.SCIENTISTS.value]
    # and although the welcome is queued twice, the email function sends it once
    welcomes = queued_notifications()
    assert [w["notification_id"] for w in welcomes] == [f"welcome-{sub}"] * 2
    for welcome in welcomes:
        assert lambda_runtime.invoke("email", sqs_event(welcome)) == {"batchItemFailures": []}
    assert [email["To"] for email in sent_emails()] == [event["request"]["userAttributes"]["email"]]


@pytest.mark.parametrize(
    "trigger_source", ["PostConfirmation_ConfirmForgotPassword", "PostConfirmation_SomethingNew"]
)
def test_other_trigger_sources_change_nothing(account: UserPool, trigger_source: str) -> None:
    # Given a post-confirmation event that is not a sign-up, such as a confirmed password reset
    event = _confirmed_user(account, "scientist") | {"triggerSource": trigger_source}

    # When the signup function handles it
    returned = lambda_runtime.invoke("signup", event)

    # Then the event comes back, and no profile, group or email was created
    assert returned == event
    with pytest.raises(UserRecord.DoesNotExist):
        UserRecord.get(event["request"]["userAttributes"]["sub"])
    assert _groups(account, event["userName"]) == []
    assert queued_notifications() == []


def test_an_unknown_role_is_refused_before_anything_is_written(account: UserPool) -> None:
    # Given a user who put an unknown role in the sign-up attribute
    event = _confirmed_user(account, "admin")

    # When the signup function handles the confirmation
    with pytest.raises(InvalidRole) as refused:
        lambda_runtime.invoke("signup", event)

    # Then the error says what is wrong and what would be right, and nothing was created
    assert "custom:role is 'admin'" in refused.value.message
    assert "scientist" in refused.value.message
    with pytest.raises(UserRecord.DoesNotExist):
        UserRecord.get(event["request"]["userAttributes"]["sub"])
    assert _groups(account, event["userName"]) == []
    assert queued_notifications() == []


@pytest.mark.parametrize(
    ("attribute", "value", "problem"),
    [
        ("email", None, "email: Field required"),
        ("email", "not-an-address", "is not a valid email address"),
        ("sub", "", "sub: String should have at least 1 character"),
        ("custom:role", None, "custom:role is ''"),
    ],
)
def test_missing_or_bad_attributes_are_named(
    account: UserPool, attribute: str, value: str | None, problem: str
) -> None:
    # Given a confirmation whose user attributes lack one, or hold a bad value
    event = _confirmed_user(account, "scientist")
    attributes = event["request"]["userAttributes"]
    if value is None:
        del attributes[attribute]
    else:
        attributes[attribute] = value

    # When the signup function handles it, Then the error names the attribute, and nothing is queued
    with pytest.raises(InvalidInput, match=problem):
        lambda_runtime.invoke("signup", event)
    assert queued_notifications() == []


def test_an_event_that_is_not_from_cognito_is_refused(account: UserPool) -> None:
    # Given an event without Cognito's envelope (no user pool, no trigger source)
    event = {"request": {"userAttributes": {"sub": "x", "email": "ada@example.org"}}}

    # When the signup function handles it, Then parsing fails and nothing is written
    with pytest.raises(ValidationError, match="userPoolId"):
        lambda_runtime.invoke("signup", event)
    assert queued_notifications() == []
