"""Who is calling: Cognito ID tokens for people, short-lived tokens for devices."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from time import time

import jwt

from cohort.catalogue import Group
from cohort.domain.errors import Forbidden, Unauthorized, Unavailable
from cohort.settings import Settings

DEVICE_TOKEN_AUDIENCE = "cohort-device"  # noqa: S105 (a claim value, not a secret)
DEVICE_TOKEN_ISSUER = "cohort"  # noqa: S105 (a claim value, not a secret)
_MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class Principal:
    """A signed-in person."""

    user_id: str
    email: str
    groups: frozenset[str]

    def require(self, group: Group) -> None:
        if group.value not in self.groups:
            raise Forbidden(f"this action is for members of the '{group.value}' group")


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    dataset_id: str


class CognitoVerifier:
    """Verifies ID tokens against the user pool's published keys (JWKS)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def _keys(self) -> jwt.PyJWKClient:
        return jwt.PyJWKClient(self._settings.cognito_jwks_url, cache_keys=True, lifespan=3600, timeout=10)

    def verify(self, token: str) -> Principal:
        try:
            signing_key = self._keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256"],
                audience=self._settings.user_pool_client_ids,
                issuer=self._settings.cognito_issuer,
                options={"require": ["exp", "iat", "sub", "token_use", "aud", "iss"]},
            )
        except jwt.PyJWKClientConnectionError:
            # The token may be fine: it is the identity provider that cannot be reached now.
            raise Unavailable("the identity provider's keys could not be fetched; try again") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid ID token: {exc}") from None
        if claims["token_use"] != "id":  # noqa: S105
            raise Unauthorized("send the Cognito ID token, not the access token")
        return Principal(
            user_id=claims["sub"],
            email=claims.get("email", ""),
            groups=frozenset(claims.get("cognito:groups", [])),
        )


class DeviceTokens:
    """HS256 tokens that bind a device to one app's dataset for a few minutes."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.token_secret.get_secret_value().encode()
        if len(secret) < _MIN_SECRET_BYTES:
            raise RuntimeError(
                f"COHORT_TOKEN_SECRET must hold at least {_MIN_SECRET_BYTES} bytes of random data"
            )
        self._secret = secret
        self._ttl = settings.device_token_ttl_seconds

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    def issue(self, identity: DeviceIdentity) -> str:
        now = int(time())
        claims = {
            "sub": identity.device_id,
            "dataset_id": identity.dataset_id,
            "aud": DEVICE_TOKEN_AUDIENCE,
            "iss": DEVICE_TOKEN_ISSUER,
            "iat": now,
            "exp": now + self._ttl,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> DeviceIdentity:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=DEVICE_TOKEN_AUDIENCE,
                issuer=DEVICE_TOKEN_ISSUER,
                options={"require": ["exp", "sub", "dataset_id"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the device token has expired; exchange the API key for a new one") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid device token: {exc}") from None
        return DeviceIdentity(device_id=claims["sub"], dataset_id=claims["dataset_id"])
