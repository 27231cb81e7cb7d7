"""User profiles, created once a sign-up is confirmed."""

from __future__ import annotations

from pynamodb.exceptions import PutError

from cohort.domain.records import UserRecord
from cohort.domain.roles import Role


def register_profile(user_id: str, email: str, role: Role) -> bool:
    """Create the profile; False if it already existed, so retried events change nothing."""
    try:
        UserRecord(user_id, email=email, role=role).save(condition=UserRecord.user_id.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True
