"""Devices trade their app's API key, and proof of their own key, for a short-lived token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cohort.domain.identifiers import Identifier
from cohort.domain.records import DeviceRegistrationRecord
from cohort.services import datasets, device_identity
from cohort.web.auth import DeviceIdentity, DeviceTokens, Principal
from cohort.web.device_assertions import DevicePublicKey


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: Annotated[str, StringConstraints(min_length=8, max_length=256)]
    device_id: Identifier
    public_key: DevicePublicKey = Field(
        description="The device's Ed25519 public key as a JWK; the first exchange of the id registers it"
    )
    assertion: Annotated[str, StringConstraints(min_length=1, max_length=4096)] = Field(
        description="A JWT signed EdDSA with the device's private key: iss = sub = device_id, "
        "aud = 'cohort-device-token', iat, exp (at most 300 s after iat), a unique jti; see docs/protocol.md"
    )


class DeviceToken(BaseModel):
    token: str
    token_type: str = "Bearer"  # noqa: S105
    expires_in: int
    dataset_id: str
    registered: bool = Field(description="True when this exchange registered the device's key")


class DeviceRegistrationView(BaseModel):
    device_id: str
    api_key_id: str
    registered_at: datetime

    @classmethod
    def of(cls, record: DeviceRegistrationRecord) -> DeviceRegistrationView:
        return cls(
            device_id=record.device_id, api_key_id=record.api_key_id, registered_at=record.registered_at
        )


def exchange(request: TokenRequest, tokens: DeviceTokens, registrations_per_minute: int) -> DeviceToken:
    api_key = datasets.live_api_key(request.api_key)
    outcome = device_identity.authenticate(
        api_key, request.device_id, request.public_key, request.assertion, registrations_per_minute
    )
    token = tokens.issue(DeviceIdentity(device_id=request.device_id, dataset_id=api_key.dataset_id))
    return DeviceToken(
        token=token,
        expires_in=tokens.ttl_seconds,
        dataset_id=api_key.dataset_id,
        registered=outcome is device_identity.Outcome.REGISTERED,
    )


def forget(owner: Principal, dataset_id: str, device_id: str) -> DeviceRegistrationView:
    """The app developer frees a device id: its next exchange registers whatever key it brings."""
    datasets.owned(owner, dataset_id)
    return DeviceRegistrationView.of(device_identity.forget(dataset_id, device_id))
