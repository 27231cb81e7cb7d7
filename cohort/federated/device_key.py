"""A device's own Ed25519 key: its identity on the platform (docs/protocol.md, "Device identity").

A simulated device keeps it in memory; a real one keeps it in a file, because a device that loses
its key cannot exchange tokens under its id again.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from cohort.web.device_assertions import DevicePublicKey, sign_assertion


class DeviceKey:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = DevicePublicKey.of(private_key.public_key())

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def stored_at(cls, path: Path) -> DeviceKey:
        """The key in the PEM file at ``path``; made and written there, owner-readable only, if absent."""
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            path.parent.mkdir(parents=True, exist_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                file.write(pem)
            return cls(key)
        key = load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
        return cls(key)

    def assertion(self, device_id: str) -> str:
        """A fresh, single-use assertion for one token exchange of ``device_id``."""
        return sign_assertion(self._private_key, device_id)
