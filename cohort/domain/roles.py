"""What a person is on the platform, and the Cognito group that grants it."""

from __future__ import annotations

from enum import StrEnum

from cohort.catalogue import Group


class Role(StrEnum):
    SCIENTIST = "scientist"
    APP_DEVELOPER = "app_developer"


ROLE_OF_GROUP = {Group.SCIENTISTS: Role.SCIENTIST, Group.APP_DEVELOPERS: Role.APP_DEVELOPER}
GROUP_OF_ROLE = {role: group for group, role in ROLE_OF_GROUP.items()}
