"""S3 access for blobs: presigned URLs for clients, bounded reads for the platform."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from cohort import aws
from cohort.catalogue import Bucket
from cohort.domain.errors import InvalidInput, NotFound, PayloadTooLarge
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
    s3 = aws.client("s3")
    try:
        s3.head_object(Bucket=bucket_name(bucket), Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def put_bytes(
    bucket: Bucket, key: str, data: bytes, *, content_type: str = "application/octet-stream"
) -> None:
    aws.client("s3").put_object(Bucket=bucket_name(bucket), Key=key, Body=data, ContentType=content_type)


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


def get_bytes(bucket: Bucket, key: str, *, max_bytes: int) -> bytes:
    """Read an object whole, refusing it before download if it is over the limit."""
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
    return data
