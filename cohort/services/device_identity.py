"""Device identities: a device id belongs to the Ed25519 key that its first token exchange registered.

Every exchange proves possession of that key with a signed, single-use assertion
(``cohort/web/device_assertions.py``). New registrations are counted per API key and minute in
DynamoDB, so the limit holds across every orchestrator task.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from time import time
from typing import NoReturn

from prometheus_client import Counter
from pynamodb.exceptions import PutError, UpdateError

from cohort.domain.errors import CohortError, Conflict, NotFound, TooManyRequests, Unauthorized
from cohort.domain.records import (
    ApiKeyRecord,
    DeviceAssertionRecord,
    DeviceRegistrationRecord,
    RegistrationWindowRecord,
)
from cohort.web.device_assertions import CLOCK_LEEWAY_SECONDS, DevicePublicKey, verify_assertion

_WINDOW_SECONDS = 60
_CONDITION_FAILED = "ConditionalCheckFailedException"


class Outcome(StrEnum):
    REGISTERED = "registered"  # a new device id, with its key
    VERIFIED = "verified"  # a known device id proved possession of its key
    REFUSED_ASSERTION = "refused_assertion"  # bad, expired or replayed assertion
    REFUSED_KEY = "refused_key"  # the id is registered with another key
    REFUSED_RATE = "refused_rate"  # the API key registered too many devices this minute


EXCHANGES = Counter(
    "cohort_device_identity_checks_total",
    "Device token exchanges, by the outcome of the device's identity check",
    ["outcome"],
)
for _outcome in Outcome:  # every series is exported from the start, at 0, so a rate over it is defined
    EXCHANGES.labels(_outcome.value)


def _refuse(outcome: Outcome, error: CohortError) -> NoReturn:
    EXCHANGES.labels(outcome.value).inc()
    raise error


def authenticate(
    api_key: ApiKeyRecord,
    device_id: str,
    public_key: DevicePublicKey,
    assertion: str,
    registrations_per_minute: int,
) -> Outcome:
    """Registers a new device id's key, or checks a known one's; raises unless the device proved it."""
    try:
        verified = verify_assertion(assertion, public_key, device_id)
        _spend(api_key.dataset_id, device_id, verified.jti, verified.expires_at)
    except Unauthorized as refused:
        _refuse(Outcome.REFUSED_ASSERTION, refused)
    registration = _registration(api_key.dataset_id, device_id)
    outcome = Outcome.VERIFIED
    if registration is None:
        _count_registration(api_key.key_id, registrations_per_minute)
        registration, outcome = _register(api_key, device_id, public_key), Outcome.REGISTERED
    if registration.public_key != public_key.x:
        _refuse(
            Outcome.REFUSED_KEY,
            Conflict(
                f"device id {device_id!r} is registered with another public key. A device that lost its "
                "key registers under a new device id (make it random, once, at install); or the app's "
                f"developer deletes the registration (DELETE /v1/datasets/{api_key.dataset_id}/devices/"
                f"{device_id}) so that the id can register again"
            ),
        )
    EXCHANGES.labels(outcome.value).inc()
    return outcome


def _spend(dataset_id: str, device_id: str, jti: str, expires_at: int) -> None:
    """Records the assertion as used; refuses one already used. Kept until it would expire anyway."""
    record = DeviceAssertionRecord(
        assertion_key=f"{dataset_id}#{device_id}#{jti}",
        expires_at=datetime.fromtimestamp(expires_at + CLOCK_LEEWAY_SECONDS, UTC),
    )
    try:
        record.save(condition=DeviceAssertionRecord.assertion_key.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code != _CONDITION_FAILED:
            raise
        raise Unauthorized(
            "this assertion was already used: sign a new one, with a new jti, for every exchange"
        ) from None


def _registration(dataset_id: str, device_id: str) -> DeviceRegistrationRecord | None:
    try:
        return DeviceRegistrationRecord.get(dataset_id, device_id, consistent_read=True)
    except DeviceRegistrationRecord.DoesNotExist:
        return None


def _count_registration(api_key_id: str, per_minute: int) -> None:
    """Takes one of the key's registrations of this minute, atomically; 429 once they are spent."""
    now = time()
    window = int(now // _WINDOW_SECONDS)
    counter = RegistrationWindowRecord(
        window_key=f"{api_key_id}#{window}",
        expires_at=datetime.fromtimestamp((window + 2) * _WINDOW_SECONDS, UTC),
    )
    try:
        counter.update(
            actions=[
                RegistrationWindowRecord.registrations.add(1),
                RegistrationWindowRecord.expires_at.set(counter.expires_at),
            ],
            condition=RegistrationWindowRecord.registrations.does_not_exist()
            | (RegistrationWindowRecord.registrations < per_minute),
        )
    except UpdateError as exc:
        if exc.cause_response_code != _CONDITION_FAILED:
            raise
        retry_after = max(1, math.ceil((window + 1) * _WINDOW_SECONDS - now))
        _refuse(
            Outcome.REFUSED_RATE,
            TooManyRequests(
                f"this API key has registered {per_minute} new devices this minute, its limit: retry in "
                f"{retry_after} s. The limit is the stage's device_registrations_per_minute setting",
                retry_after=retry_after,
            ),
        )


def _register(api_key: ApiKeyRecord, device_id: str, public_key: DevicePublicKey) -> DeviceRegistrationRecord:
    """Registers the key; returns the registration that holds the id: this one, or a racing exchange's."""
    record = DeviceRegistrationRecord(
        dataset_id=api_key.dataset_id, device_id=device_id, public_key=public_key.x, api_key_id=api_key.key_id
    )
    try:
        record.save(condition=DeviceRegistrationRecord.device_id.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code != _CONDITION_FAILED:
            raise
        # Deleted again in between: the id is free, and the device's next exchange registers it.
        return _registration(api_key.dataset_id, device_id) or record
    return record


def forget(dataset_id: str, device_id: str) -> DeviceRegistrationRecord:
    """Deletes a device id's registration, so that the id can register a new key."""
    registration = _registration(dataset_id, device_id)
    if registration is None:
        raise NotFound(f"no device {device_id!r} is registered for dataset {dataset_id}")
    registration.delete()
    return registration
