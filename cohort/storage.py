"""S3 access for blobs: presigned URLs for clients, bounded reads for the platform."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from pydantic import BaseModel

from cohort import aws
from cohort.catalogue import Bucket
from cohort.domain.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from cohort.settings import get_settings


class Download(BaseModel):
    url: str
    expires_in: int


def bucket_name(bucket: Bucket) -> str:
    return get_settings().catalogue.bucket(bucket)


def download(bucket: Bucket, key: str, filename: str) -> Download:
    """A presigned link that saves the object as ``filename``."""
    return Download(
        url=presigned_get(bucket, key, filename=filename),
        expires_in=get_settings().presigned_url_ttl_seconds,
    )


def presigned_get(bucket: Bucket, key: str, *, filename: str | None = None) -> str:
    params = {"Bucket": bucket_name(bucket), "Key": key}
    if filename:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    return aws.client("s3").generate_presigned_url(
        "get_object", Params=params, ExpiresIn=get_settings().presigned_url_ttl_seconds
    )


def presigned_put(bucket: Bucket, key: str, *, content_length: int | None = None) -> str:
    """A presigned PUT; with ``content_length``, S3 refuses an upload of any other size."""
    params: dict[str, object] = {
        "Bucket": bucket_name(bucket),
        "Key": key,
        "ContentType": "application/octet-stream",
    }
    if content_length is not None:
        params["ContentLength"] = content_length
    return aws.client("s3").generate_presigned_url(
        "put_object", Params=params, ExpiresIn=get_settings().presigned_url_ttl_seconds
    )


def exists(bucket: Bucket, key: str) -> bool:
    return _head(bucket, key) is not None


def _head(bucket: Bucket, key: str, **options: str) -> dict | None:
    """The object's metadata, or None if there is no such object."""
    s3 = aws.client("s3")
    try:
        return s3.head_object(Bucket=bucket_name(bucket), Key=key, **options)
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def put_bytes(
    bucket: Bucket, key: str, data: bytes, *, content_type: str = "application/octet-stream"
) -> None:
    aws.client("s3").put_object(Bucket=bucket_name(bucket), Key=key, Body=data, ContentType=content_type)


def put_sealed(bucket: Bucket, key: str, data: bytes) -> str:
    """Write bytes the platform made itself under a key no URL names, as :func:`seal` leaves an upload:
    S3 keeps their SHA-256 (returned, in hex), which :func:`sealed_sha256` reads back."""
    aws.client("s3").put_object(
        Bucket=bucket_name(bucket),
        Key=key,
        Body=data,
        ContentType="application/octet-stream",
        ChecksumAlgorithm="SHA256",
    )
    return sha256_hex(data)


def upload_file(bucket: Bucket, key: str, path: Path, content_type: str) -> None:
    """Upload a local file; a large one goes in parts, several at a time."""
    aws.client("s3").upload_file(str(path), bucket_name(bucket), key, ExtraArgs={"ContentType": content_type})


def delete_prefix(bucket: Bucket, prefix: str) -> int:
    """Delete every object under ``prefix``, each of its versions and delete markers included, so
    that nothing of it stays readable in a versioned bucket; the number of versions deleted."""
    s3, name, deleted = aws.client("s3"), bucket_name(bucket), 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name, Prefix=prefix):
        # A page holds at most 1,000 entries, as many as one DeleteObjects call takes.
        versions = [
            {"Key": entry["Key"], "VersionId": entry["VersionId"]}
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if not versions:
            continue
        answer = s3.delete_objects(Bucket=name, Delete={"Objects": versions, "Quiet": True})
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise RuntimeError(
                f"{len(answer['Errors'])} objects under {prefix} were not deleted, "
                f"{first['Key']}: {first.get('Code')} {first.get('Message')}"
            )
        deleted += len(versions)
    return deleted


def get_bytes(bucket: Bucket, key: str, *, max_bytes: int, sha256: str | None = None) -> bytes:
    """Read an object whole, refusing it before download if it is over the limit.

    With ``sha256`` (hex), the object must have that digest: a sealed object that changed is refused.
    """
    s3 = aws.client("s3")
    try:
        response = s3.get_object(Bucket=bucket_name(bucket), Key=key)
    except s3.exceptions.NoSuchKey:
        raise NotFound(f"nothing has been uploaded to {key}") from None
    size = response["ContentLength"]
    if size > max_bytes:
        response["Body"].close()
        raise PayloadTooLarge(f"{key} is {size:,} bytes; the limit is {max_bytes:,}")
    data = response["Body"].read()
    if len(data) != size:
        raise InvalidInput(f"{key} was truncated in transfer")
    if sha256 is not None and sha256_hex(data) != sha256:
        raise Conflict(f"{key} is not what was sealed: its SHA-256 differs from the one recorded")
    return data


def seal(bucket: Bucket, upload_key: str, sealed_key: str, sha256: str) -> None:
    """Copy a checked upload, inside S3, to the key that readers use, then delete the upload.

    ``sha256`` (hex) is the digest of the bytes the caller checked. S3 computes the copy's own, so an
    upload replaced between the check and the copy is caught: the copy is deleted and Conflict raised.
    """
    s3, name = aws.client("s3"), bucket_name(bucket)
    try:
        copied = s3.copy_object(
            Bucket=name,
            Key=sealed_key,
            CopySource={"Bucket": name, "Key": upload_key},
            ChecksumAlgorithm="SHA256",
        )
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            raise Conflict(f"{upload_key} was committed or removed while it was being committed") from None
        raise
    reported = copied["CopyObjectResult"].get("ChecksumSHA256")
    if (_hex(reported) if reported else sealed_sha256(bucket, sealed_key)) != sha256:
        delete(bucket, sealed_key)
        raise Conflict(f"{upload_key} was uploaded again while it was being committed; commit again")
    delete(bucket, upload_key)


def delete(bucket: Bucket, key: str) -> None:
    aws.client("s3").delete_object(Bucket=bucket_name(bucket), Key=key)


def sealed_sha256(bucket: Bucket, key: str) -> str | None:
    """The SHA-256 (hex) S3 keeps for an object, without reading it; None if it is absent or has none.

    An object that :func:`seal` wrote has one; anything written over it since, by a plain PUT, has
    another or none.
    """
    head = _head(bucket, key, ChecksumMode="ENABLED")
    checksum = head and head.get("ChecksumSHA256")
    # A checksum of parts ("...-N") is not the object's digest: it counts as none.
    return _hex(checksum) if checksum and "-" not in checksum else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hex(checksum: str) -> str:
    """A checksum as S3 writes it (the raw digest in base64), in hex."""
    return base64.b64decode(checksum).hex()
