"""S3 adapter for the operator: list the current version of every object under a prefix."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from typing import Any

from ..domain.ingestion import real_version
from ..domain.timefmt import NS_PER_S
from ..ports import ListedObject


class S3ObjectLister:
    def __init__(self, client: Any) -> None:
        self._client = client

    def current_objects(self, bucket: str, prefix: str) -> Iterator[ListedObject]:
        """Current versions under ``prefix`` in key order; a key whose newest entry is a delete marker is left out."""
        paginator = self._client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                if not version.get("IsLatest"):
                    continue
                modified = version["LastModified"]
                version_id = version.get("VersionId")
                yield ListedObject(
                    key=version["Key"],
                    version_id=real_version(version_id),
                    size=int(version.get("Size", 0)),
                    last_modified_ns=(calendar.timegm(modified.utctimetuple()) * NS_PER_S
                                      + modified.microsecond * 1_000),
                    etag=str(version.get("ETag", "")).strip('"'),
                )
