"""S3 adapter: object metadata, streaming reads and ranged reads, and which version of a key is current."""

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
        """The id of the key's newest version that is not a delete marker (None when unversioned, for the "null"
        version, or when the key has no version left).

        HeadObject without a VersionId names the current version, at a cost that does not grow with the bucket.
        Only a key whose current version is a delete marker has its versions listed, to find the newest one
        that is not."""
        try:
            r = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                raise
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if headers.get("x-amz-delete-marker") != "true":
                return None  # no version of the key at all
            return self._newest_under_delete_marker(bucket, key)
        return real_version(r.get("VersionId"))

    def _newest_under_delete_marker(self, bucket: str, key: str) -> str | None:
        """The key's newest version that is not a delete marker, from its version listing."""
        paginator = self._client.get_paginator("list_object_versions")
        newest: tuple[Any, str] | None = None
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            versions = page.get("Versions", [])
            for version in versions:
                if version["Key"] != key:
                    continue
                if version.get("IsLatest"):  # a new version was written since the HeadObject
                    return real_version(version.get("VersionId"))
                if newest is None or version["LastModified"] > newest[0]:
                    newest = (version["LastModified"], version.get("VersionId"))
            if any(entry["Key"] != key for entry in (*versions, *page.get("DeleteMarkers", []))):
                break  # listed in key order, and the key sorts before every longer key it prefixes: all seen
        return None if newest is None else real_version(newest[1])
