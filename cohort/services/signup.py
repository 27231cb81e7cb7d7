"""Cognito's post-confirmation step: profile, group and welcome email for a new user.

Every step is idempotent, so Cognito may retry the trigger freely: the profile
is created once, joining a group twice is a no-op, and the welcome email's id
is derived from the user, so the email function sends it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from cohort import aws
from cohort.catalogue import Group
from cohort.domain.errors import InvalidInput, describe_validation_error
from cohort.domain.records import bind_tables
from cohort.domain.roles import GROUP_OF_ROLE, ROLE_OF_GROUP, Role
from cohort.notify.messages import EmailAddress, Welcome
from cohort.notify.queue import enqueue
from cohort.services.users import register_profile
from cohort.settings import get_settings

CONFIRM_SIGN_UP = "PostConfirmation_ConfirmSignUp"
ROLE_ATTRIBUTE = "custom:role"


class _CallerContext(BaseModel):
    awsSdkVersion: str  # noqa: N815 (Cognito's field names)
    clientId: str  # noqa: N815


class _Request(BaseModel):
    userAttributes: dict[str, str]  # noqa: N815
    clientMetadata: dict[str, str] | None = None  # noqa: N815


class PostConfirmationEvent(BaseModel):
    """Cognito's post-confirmation event, whatever its trigger source.

    Written here rather than taken from Powertools, whose model accepts only
    ``PostConfirmation_ConfirmSignUp`` (a confirmed password reset comes through
    the same trigger) and whose models package imports every event model there is.
    """

    version: str
    region: str
    userPoolId: str  # noqa: N815
    userName: str  # noqa: N815
    callerContext: _CallerContext  # noqa: N815
    triggerSource: str  # noqa: N815
    request: _Request
    response: dict[str, Any] = Field(default_factory=dict)


class _SignUpAttributes(BaseModel):
    sub: str = Field(min_length=1)
    email: EmailAddress
    role: str = Field("", alias=ROLE_ATTRIBUTE)


@dataclass(frozen=True)
class SignUp:
    user_id: str
    role: Role
    created: bool  # False when a retried event found the profile already there


class InvalidRole(InvalidInput):
    pass


def role_of(value: str) -> Role:
    """``custom:role`` holds a role (``scientist``) or the name of its group (``scientists``)."""
    roles = {role.value: role for role in Role} | {group.value: role for group, role in ROLE_OF_GROUP.items()}
    if value in roles:
        return roles[value]
    choices = ", ".join([*Role, *Group])
    raise InvalidRole(f"the attribute {ROLE_ATTRIBUTE} is {value!r}; it must be one of {choices}")


def confirm_sign_up(event: PostConfirmationEvent) -> SignUp | None:
    """Set the new user up; None for other trigger sources, which change nothing."""
    if event.triggerSource != CONFIRM_SIGN_UP:
        return None
    try:
        attributes = _SignUpAttributes.model_validate(event.request.userAttributes)
    except ValidationError as exc:
        raise InvalidInput(
            f"the user's attributes are incomplete: {describe_validation_error(exc)}"
        ) from None
    role = role_of(attributes.role)  # before anything is written
    bind_tables(get_settings())
    created = register_profile(attributes.sub, attributes.email, role)
    aws.client("cognito-idp").admin_add_user_to_group(
        UserPoolId=event.userPoolId, Username=event.userName, GroupName=GROUP_OF_ROLE[role].value
    )
    enqueue(Welcome(notification_id=f"welcome-{attributes.sub}", to=attributes.email, role=role))
    return SignUp(user_id=attributes.sub, role=role, created=created)
