"""Sealing an upload (cohort/storage.py), on moto in this process: the copy keeps the bytes checked."""

from __future__ import annotations

import pytest

from cohort import storage
from cohort.catalogue import Bucket
from cohort.domain.errors import Conflict
from cohort.local.provision import UserPool

CHECKED = b"the bytes the commit checked"
UPLOAD, SEALED = "uploads/models/m/weights.safetensors", "models/m/sealed-1.safetensors"


def test_a_sealed_upload_moves_to_its_key_with_its_digest(account: UserPool) -> None:
    # Given an upload whose bytes were checked
    storage.put_bytes(Bucket.MODELS, UPLOAD, CHECKED)

    # When it is sealed
    storage.seal(Bucket.MODELS, UPLOAD, SEALED, storage.sha256_hex(CHECKED))

    # Then the sealed key holds those bytes, S3 keeps their digest, and the upload is gone
    assert (
        storage.get_bytes(Bucket.MODELS, SEALED, max_bytes=1_000, sha256=storage.sha256_hex(CHECKED))
        == CHECKED
    )
    assert storage.sealed_sha256(Bucket.MODELS, SEALED) == storage.sha256_hex(CHECKED)
    assert not storage.exists(Bucket.MODELS, UPLOAD)


def test_an_upload_replaced_between_the_check_and_the_seal_is_not_sealed(account: UserPool) -> None:
    # Given an upload replaced after its bytes were checked
    storage.put_bytes(Bucket.MODELS, UPLOAD, b"something else, PUT in the meantime")

    # When the checked bytes are sealed
    with pytest.raises(Conflict) as refused:
        storage.seal(Bucket.MODELS, UPLOAD, SEALED + ".raced", storage.sha256_hex(CHECKED))

    # Then nothing is sealed, and the commit is told to run again
    assert "commit again" in refused.value.message
    assert not storage.exists(Bucket.MODELS, SEALED + ".raced")


def test_a_write_over_a_sealed_object_is_seen_by_its_digest(account: UserPool) -> None:
    # Given a sealed object, then written over past the API
    digest = storage.put_sealed(Bucket.MODELS, SEALED, CHECKED)
    storage.put_bytes(Bucket.MODELS, SEALED, b"garbage")

    # Then neither the digest S3 keeps nor a reader that checks it takes the new bytes for the sealed
    assert storage.sealed_sha256(Bucket.MODELS, SEALED) != digest
    with pytest.raises(Conflict):
        storage.get_bytes(Bucket.MODELS, SEALED, max_bytes=1_000, sha256=digest)
    # and a missing object has no digest at all
    assert storage.sealed_sha256(Bucket.MODELS, "models/m/never-written") is None
