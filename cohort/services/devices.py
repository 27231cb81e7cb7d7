"""Devices trade their app's API key for a short-lived token."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from cohort.domain.identifiers import Identifier
from cohort.services import datasets
from cohort.web.auth import DeviceIdentity, DeviceTokens


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: Annotated[str, StringConstraints(min_length=8, max_length=256)]
    device_id: Identifier


class DeviceToken(BaseModel):
    token: str
    token_type: str = "Bearer"  # noqa: S105
    expires_in: int
    dataset_id: str


def exchange(request: TokenRequest, tokens: DeviceTokens) -> DeviceToken:
    dataset_id = datasets.dataset_of_api_key(request.api_key)
    token = tokens.issue(DeviceIdentity(device_id=request.device_id, dataset_id=dataset_id))
    return DeviceToken(token=token, expires_in=tokens.ttl_seconds, dataset_id=dataset_id)
