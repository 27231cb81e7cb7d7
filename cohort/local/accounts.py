"""Sign-up on the local platform: Cognito on the emulator, then the post-confirmation step.

The emulator sends no confirmation codes and runs no Cognito triggers, so the
local platform confirms the user as an administrator would and then runs the
post-confirmation step itself.
"""

from __future__ import annotations

from cohort import aws
from cohort.catalogue import Group
from cohort.services.users import ROLE_OF_GROUP, register_profile


def create_confirmed_user(pool_id: str, client_id: str, email: str, password: str, group: Group) -> str:
    """Sign up, confirm, join the group and create the profile; returns the user's sub."""
    cognito = aws.client("cognito-idp")
    role = ROLE_OF_GROUP[group]
    signed_up = cognito.sign_up(
        ClientId=client_id,
        Username=email,
        Password=password,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "custom:role", "Value": role.value}],
    )
    cognito.admin_confirm_sign_up(UserPoolId=pool_id, Username=email)
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=group.value)
    register_profile(signed_up["UserSub"], email, role)
    return signed_up["UserSub"]
