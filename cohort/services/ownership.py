"""Fetching a record on behalf of its owner.

Another user's record is reported exactly like a missing one, so ids cannot be
probed for existence.
"""

from __future__ import annotations

from typing import TypeVar

from pynamodb.models import Model

from cohort.domain.errors import NotFound
from cohort.web.auth import Principal

Record = TypeVar("Record", bound=Model)


def owned_record(record_type: type[Record], key: str, owner: Principal, label: str) -> Record:
    try:
        record = record_type.get(key, consistent_read=True)
    except record_type.DoesNotExist:
        record = None
    if record is None or record.owner_id != owner.user_id:
        raise NotFound(f"no {label} {key}")
    return record
