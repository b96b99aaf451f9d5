"""S3 adapter: object metadata, streaming reads and ranged reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from ..domain.errors import NotFound
from ..domain.ingestion import real_version
from ..ports import ObjectInfo

READ_BLOCK = 1024 * 1024


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self._client = client

    @staticmethod
    def _version(version_id: str | None) -> dict[str, str]:
        version = real_version(version_id)
        return {"VersionId": version} if version else {}

    def head(self, bucket: str, key: str, version_id: str | None) -> ObjectInfo:
        """What S3 knows of the object version; NotFound once it is gone (deleted after its event was sent)."""
        try:
            r = self._client.head_object(Bucket=bucket, Key=key, **self._version(version_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchVersion", "405"):
                raise NotFound(f"s3://{bucket}/{key} (version {version_id}) no longer exists") from None
            raise
        return ObjectInfo(
            size=int(r["ContentLength"]), content_type=r.get("ContentType"),
            metadata={k.lower(): v for k, v in r.get("Metadata", {}).items()},
            version_id=r.get("VersionId"), etag=r.get("ETag", "").strip('"'),
        )

    def stream(self, bucket: str, key: str, version_id: str | None) -> Iterator[bytes]:
        body = self._client.get_object(Bucket=bucket, Key=key, **self._version(version_id))["Body"]
        try:
            yield from body.iter_chunks(READ_BLOCK)
        finally:
            body.close()

    def read_range(self, bucket: str, key: str, version_id: str | None, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object."""
        if end <= start:
            return b""
        r = self._client.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", **self._version(version_id)
        )
        return r["Body"].read()

    def read_all(self, bucket: str, key: str, version_id: str | None) -> bytes:
        return self._client.get_object(Bucket=bucket, Key=key, **self._version(version_id))["Body"].read()

    def latest_version(self, bucket: str, key: str) -> str | None:
        """The id of the key's newest version that is not a delete marker (None when unversioned or none)."""
        paginator = self._client.get_paginator("list_object_versions")
        newest: tuple[Any, str] | None = None
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for version in page.get("Versions", []):
                if version["Key"] != key:
                    continue
                if version.get("IsLatest"):
                    found = version.get("VersionId")
                    return real_version(found)
                if newest is None or version["LastModified"] > newest[0]:
                    newest = (version["LastModified"], version.get("VersionId"))
        return None if newest is None else real_version(newest[1])
