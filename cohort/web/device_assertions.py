"""Device assertions: how a device proves that it holds the key registered for its id.

In the manner of OAuth's ``private_key_jwt`` (RFC 7523): every token exchange carries a JWT that
the device signs with its Ed25519 private key (alg ``EdDSA``), short-lived and used once. The
orchestrator checks it against the public key registered for the device id; this module is that
contract, for both sides: what the device signs and what the server accepts.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from time import time
from typing import Annotated, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ConfigDict, StringConstraints

from cohort.domain.errors import Unauthorized

# The assertion's audience: the token endpoint of any Cohort deployment. A fixed string, not the
# endpoint's URL, because the URL a device calls (API Gateway's) is not the one the orchestrator
# sees behind the load balancers; an assertion is single-use and bound to the device's own key.
DEVICE_ASSERTION_AUDIENCE = "cohort-device-token"
ASSERTION_ALGORITHM = "EdDSA"
# An assertion may live at most this long (exp - iat), and exp may lie at most this far ahead.
MAX_ASSERTION_LIFETIME_SECONDS = 300
# Tolerated difference between the device's clock and the server's.
CLOCK_LEEWAY_SECONDS = 60
_ED25519_KEY_BYTES = 32


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class DevicePublicKey(BaseModel):
    """An Ed25519 public key as a JSON Web Key (RFC 8037), as WebCrypto exports it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]  # base64url, no padding

    @classmethod
    def of(cls, key: Ed25519PublicKey) -> DevicePublicKey:
        return cls(kty="OKP", crv="Ed25519", x=_base64url(key.public_bytes(Encoding.Raw, PublicFormat.Raw)))

    def load(self) -> Ed25519PublicKey:
        """The key itself; refuses a non-canonical encoding, so that one key has one spelling."""
        try:
            raw = base64.urlsafe_b64decode(self.x + "=")
        except binascii.Error:
            raw = b""
        if len(raw) != _ED25519_KEY_BYTES or _base64url(raw) != self.x:
            raise Unauthorized("public_key.x is not a base64url-encoded 32-byte Ed25519 public key")
        return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class VerifiedAssertion:
    jti: str
    expires_at: int  # epoch seconds; the assertion is refused as expired after this (plus leeway)


def sign_assertion(key: Ed25519PrivateKey, device_id: str, lifetime_seconds: int = 60) -> str:
    """A fresh assertion for one token exchange of ``device_id``."""
    now = int(time())
    claims = {
        "iss": device_id,
        "sub": device_id,
        "aud": DEVICE_ASSERTION_AUDIENCE,
        "iat": now,
        "exp": now + lifetime_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, key, algorithm=ASSERTION_ALGORITHM)


def verify_assertion(assertion: str, key: DevicePublicKey, device_id: str) -> VerifiedAssertion:
    """The assertion's id and expiry, once its signature by ``key`` and its claims are checked.

    Replays are the caller's to refuse: it records each jti until the assertion expires.
    """
    try:
        algorithm = jwt.get_unverified_header(assertion).get("alg")
    except jwt.PyJWTError as exc:
        raise Unauthorized(
            f"the assertion is not a JWT ({exc}); send one signed as docs/protocol.md says"
        ) from None
    if algorithm != ASSERTION_ALGORITHM:
        raise Unauthorized(
            f"the assertion is signed with {algorithm!r}: sign it with the device's Ed25519 key, alg EdDSA"
        )
    try:
        claims = jwt.decode(
            assertion,
            key.load(),
            algorithms=[ASSERTION_ALGORITHM],
            audience=DEVICE_ASSERTION_AUDIENCE,
            issuer=device_id,
            leeway=CLOCK_LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the assertion has expired: sign a new one for every exchange") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("the assertion is issued in the future: check the device's clock") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"the assertion lacks its {exc.claim!r} claim; see docs/protocol.md") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(f"the assertion's aud must be {DEVICE_ASSERTION_AUDIENCE!r}") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized("the assertion's iss must be the device_id, as its sub is") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("the assertion's signature does not verify against public_key") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid assertion: {exc}") from None
    if claims["sub"] != device_id:
        raise Unauthorized("the assertion's sub must be the device_id, as its iss is")
    lifetime, ahead = claims["exp"] - claims["iat"], claims["exp"] - time()
    if max(lifetime, ahead - CLOCK_LEEWAY_SECONDS) > MAX_ASSERTION_LIFETIME_SECONDS:
        raise Unauthorized(
            f"the assertion lives too long: exp may lie at most {MAX_ASSERTION_LIFETIME_SECONDS} s "
            "after iat and after now"
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
        raise Unauthorized("the assertion's jti must be a unique string of 8 to 128 characters")
    return VerifiedAssertion(jti=jti, expires_at=int(claims["exp"]))
