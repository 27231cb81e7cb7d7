"""The assertion a device signs at each token exchange, and what the orchestrator accepts of it."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import ValidationError

from cohort.domain.errors import Unauthorized
from cohort.federated.device_key import DeviceKey
from cohort.web.device_assertions import (
    DEVICE_ASSERTION_AUDIENCE,
    MAX_ASSERTION_LIFETIME_SECONDS,
    DevicePublicKey,
    verify_assertion,
)

DEVICE = "phone-42"


@pytest.fixture(scope="module")
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def public_key(private_key: Ed25519PrivateKey) -> DevicePublicKey:
    return DevicePublicKey.of(private_key.public_key())


_TIMES = ("iat", "exp")


def _claims(**overrides: object) -> dict:
    """Good claims, but for ``overrides``: ``iat`` and ``exp`` in seconds from now, None to leave out."""
    now = int(time.time())
    claims = {
        "iss": DEVICE,
        "sub": DEVICE,
        "aud": DEVICE_ASSERTION_AUDIENCE,
        "iat": 0,
        "exp": 60,
        "jti": "a-unique-assertion-id",
        **overrides,
    }
    return {
        name: now + value if name in _TIMES and value is not None else value
        for name, value in claims.items()
        if value is not None
    }


def _refusal(assertion: str, public_key: DevicePublicKey, device_id: str = DEVICE) -> str:
    with pytest.raises(Unauthorized) as refused:
        verify_assertion(assertion, public_key, device_id)
    return refused.value.message


def test_an_assertion_signed_by_the_device_key_gives_its_id_and_expiry(
    private_key: Ed25519PrivateKey, public_key: DevicePublicKey
) -> None:
    # Given an assertion as the device client signs it
    assertion = DeviceKey(private_key).assertion(DEVICE)

    # When it is verified against the device's public key
    verified = verify_assertion(assertion, public_key, DEVICE)

    # Then its jti (for the replay check) and its expiry come back
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert (verified.jti, verified.expires_at) == (claims["jti"], claims["exp"])
    assert claims["exp"] - claims["iat"] <= MAX_ASSERTION_LIFETIME_SECONDS


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iat": -400, "exp": -100}, "expired"),
        ({"aud": "https://another.example/token"}, "aud must be"),
        ({"aud": None}, "lacks its 'aud'"),
        ({"iss": "another-phone"}, "iss must be the device_id"),
        ({"sub": "another-phone"}, "sub must be the device_id"),
        ({"jti": None}, "lacks its 'jti'"),
        ({"jti": "short"}, "jti must be"),
        ({"exp": None}, "lacks its 'exp'"),
        ({"iat": None}, "lacks its 'iat'"),
        ({"exp": 3600}, "lives too long"),
        ({"iat": -600, "exp": 60}, "lives too long"),
        ({"iat": 600, "exp": 660}, "future"),
    ],
    ids=[
        "expired",
        "wrong-audience",
        "no-audience",
        "wrong-issuer",
        "wrong-subject",
        "no-jti",
        "short-jti",
        "no-exp",
        "no-iat",
        "exp-an-hour-ahead",
        "lifetime-over-five-minutes",
        "issued-in-the-future",
    ],
)
def test_an_assertion_with_bad_claims_is_refused(
    private_key: Ed25519PrivateKey, public_key: DevicePublicKey, overrides: dict, reason: str
) -> None:
    # Given a correctly signed assertion whose claims are wrong
    assertion = jwt.encode(_claims(**overrides), private_key, algorithm="EdDSA")

    # Then it is refused, saying what is wrong
    assert reason in _refusal(assertion, public_key)


def test_unsigned_and_hmac_assertions_are_refused(public_key: DevicePublicKey) -> None:
    # Given an unsigned assertion, and one "signed" with HS256 keyed by the public key itself
    unsigned = jwt.encode(_claims(), None, algorithm="none")
    hmac = jwt.encode(_claims(), public_key.x, algorithm="HS256")
    raw_key = base64.urlsafe_b64decode(public_key.x + "=")
    hmac_raw = jwt.encode(_claims(), raw_key, algorithm="HS256")

    # Then each is refused for its algorithm
    for assertion in (unsigned, hmac, hmac_raw):
        assert "sign it with the device's Ed25519 key, alg EdDSA" in _refusal(assertion, public_key)


def test_an_assertion_signed_with_another_key_is_refused(public_key: DevicePublicKey) -> None:
    # Given an attacker who signs a well-formed assertion with a key of their own
    forged = jwt.encode(_claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA")
    # And one signed with another algorithm's key
    other_curve = jwt.encode(_claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")

    # Then neither verifies against the device's registered key
    assert "does not verify" in _refusal(forged, public_key)
    assert "alg EdDSA" in _refusal(other_curve, public_key)


@pytest.mark.parametrize("assertion", ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30", "x" * 4000])
def test_a_malformed_assertion_is_refused(public_key: DevicePublicKey, assertion: str) -> None:
    assert _refusal(assertion, public_key)


def test_a_public_key_must_be_an_ed25519_jwk() -> None:
    # Given JWKs that are not a 32-byte Ed25519 key
    for jwk in (
        {"kty": "OKP", "crv": "X25519", "x": "A" * 43},
        {"kty": "EC", "crv": "Ed25519", "x": "A" * 43},
        {"kty": "OKP", "crv": "Ed25519", "x": "A" * 42},
        {"kty": "OKP", "crv": "Ed25519", "x": "A" * 43, "d": "A" * 43},  # never send the private part
    ):
        # Then the request model refuses them
        with pytest.raises(ValidationError):
            DevicePublicKey.model_validate(jwk)

    # And a key spelled with stray low bits (the same 32 bytes, another string) is refused too
    canonical = DevicePublicKey.of(Ed25519PrivateKey.generate().public_key())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stray = canonical.x[:-1] + alphabet[alphabet.index(canonical.x[-1]) ^ 1]  # the last char's unused bit
    assert base64.urlsafe_b64decode(stray + "=") == base64.urlsafe_b64decode(canonical.x + "=")
    with pytest.raises(Unauthorized):
        DevicePublicKey(kty="OKP", crv="Ed25519", x=stray).load()


def test_a_device_key_is_kept_in_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    # Given a real device that keeps its key under its app's data
    path = tmp_path / "identity" / "device-key.pem"

    # When it makes its key, and later starts again
    first = DeviceKey.stored_at(path)
    again = DeviceKey.stored_at(path)

    # Then it is the same key, in a file that no other user may read
    assert first.public_key == again.public_key
    assert path.stat().st_mode & 0o777 == 0o600
    assert verify_assertion(again.assertion(DEVICE), first.public_key, DEVICE).jti


def test_a_key_file_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device-key.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        DeviceKey.stored_at(path)
