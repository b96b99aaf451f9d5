"""The object store contract, against the in-memory bucket and S3 on moto: which version of a key is current
(the newest one that is not a delete marker), what a read without a version id finds, and what a listing of
current objects leaves out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from chalicelib.adapters.s3 import S3ObjectStore
from chalicelib.adapters.s3_listing import S3ObjectLister
from chalicelib.domain.errors import NotFound
from chalicelib.domain.ingestion import real_version
from tests.contract.conftest import SETTINGS, emulator
from tests.fakes import MemoryObjects

BUCKET = SETTINGS.bucket_name


@dataclass
class Bucket:
    """An object store (``objects``), its lister, and how the test writes to the bucket behind them."""

    objects: Any
    lister: Any
    _memory: MemoryObjects | None = None
    _s3: Any = None

    def put(self, key: str, data: bytes, versioned: bool = True) -> str | None:
        """A new version of ``key`` (while versioning is suspended when not ``versioned``); its version id."""
        if self._memory is not None:
            return real_version(self._memory.put(BUCKET, key, data, versioned=versioned))
        if not versioned:
            self._versioning("Suspended")
        try:
            return real_version(self._s3.put_object(Bucket=BUCKET, Key=key, Body=data).get("VersionId"))
        finally:
            if not versioned:
                self._versioning("Enabled")

    def delete(self, key: str, version_id: str | None = None) -> str:
        """A delete marker on ``key`` (its id), or with ``version_id`` that version removed for good."""
        if self._memory is not None:
            return self._memory.delete(BUCKET, key, version_id)
        extra = {"VersionId": version_id} if version_id else {}
        return str(self._s3.delete_object(Bucket=BUCKET, Key=key, **extra).get("VersionId", version_id))

    def current(self, prefix: str = "") -> dict[str, str | None]:
        return {o.key: o.version_id for o in self.lister.current_objects(BUCKET, prefix)}

    def _versioning(self, status: str) -> None:
        self._s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": status})


@pytest.fixture(params=["memory", "s3"])
def bucket(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    if request.param == "memory":
        memory = MemoryObjects()
        yield Bucket(memory, memory, _memory=memory)
        return
    with emulator(monkeypatch):
        s3 = boto3.client("s3")
        yield Bucket(S3ObjectStore(s3), S3ObjectLister(s3), _s3=s3)


def test_an_overwritten_key_names_its_newest_version(bucket: Bucket) -> None:
    v1 = bucket.put("incoming/day.csv", b"a,1\n")
    v2 = bucket.put("incoming/day.csv", b"a,2\n")
    assert v1 and v2 and v1 != v2
    assert bucket.objects.latest_version(BUCKET, "incoming/day.csv") == v2
    assert real_version(bucket.objects.head(BUCKET, "incoming/day.csv", None).version_id) == v2
    assert bucket.objects.read_all(BUCKET, "incoming/day.csv", v1) == b"a,1\n"  # the old one stays readable
    assert bucket.current() == {"incoming/day.csv": v2}


def test_a_deleted_key_still_names_the_newest_version_under_its_delete_marker(bucket: Bucket) -> None:
    bucket.put("incoming/day.csv", b"a,1\n")
    v2 = bucket.put("incoming/day.csv", b"a,2\n")
    marker = bucket.delete("incoming/day.csv")
    assert bucket.objects.latest_version(BUCKET, "incoming/day.csv") == v2
    with pytest.raises(NotFound):
        bucket.objects.head(BUCKET, "incoming/day.csv", None)
    assert bucket.objects.head(BUCKET, "incoming/day.csv", v2).size == 4
    assert bucket.current() == {}
    # The marker removed, the key is back as it was; a new version is the newest again.
    bucket.delete("incoming/day.csv", marker)
    assert bucket.objects.latest_version(BUCKET, "incoming/day.csv") == v2
    assert bucket.current() == {"incoming/day.csv": v2}
    bucket.delete("incoming/day.csv")
    v3 = bucket.put("incoming/day.csv", b"a,3\n")
    assert bucket.objects.latest_version(BUCKET, "incoming/day.csv") == v3
    assert bucket.current() == {"incoming/day.csv": v3}


def test_a_key_with_no_version_left_names_none(bucket: Bucket) -> None:
    assert bucket.objects.latest_version(BUCKET, "incoming/never.csv") is None
    v1 = bucket.put("incoming/day.csv", b"a,1\n")
    assert v1 is not None
    bucket.delete("incoming/day.csv", v1)
    assert bucket.objects.latest_version(BUCKET, "incoming/day.csv") is None
    with pytest.raises(NotFound):
        bucket.objects.head(BUCKET, "incoming/day.csv", None)


def test_the_null_version_is_named_none(bucket: Bucket) -> None:
    """An object written before versioning was enabled, or while it was suspended, has the version "null"."""
    assert bucket.put("incoming/old.csv", b"a,1\n", versioned=False) is None
    assert bucket.objects.latest_version(BUCKET, "incoming/old.csv") is None
    assert real_version(bucket.objects.head(BUCKET, "incoming/old.csv", None).version_id) is None
    assert bucket.objects.read_all(BUCKET, "incoming/old.csv", "null") == b"a,1\n"
    v2 = bucket.put("incoming/old.csv", b"a,2\n")
    assert v2 is not None
    assert bucket.objects.latest_version(BUCKET, "incoming/old.csv") == v2
    assert bucket.current() == {"incoming/old.csv": v2}
    # Written while suspended again: the null version is the current one.
    bucket.put("incoming/old.csv", b"a,3\n", versioned=False)
    assert bucket.objects.latest_version(BUCKET, "incoming/old.csv") is None
    assert bucket.objects.read_all(BUCKET, "incoming/old.csv", None) == b"a,3\n"


def test_a_key_is_not_confused_with_the_longer_keys_it_prefixes(bucket: Bucket) -> None:
    v1 = bucket.put("incoming/day.csv", b"a,1\n")
    bucket.put("incoming/day.csv.bak", b"b,1\n")
    b2 = bucket.put("incoming/day.csv.bak", b"b,2\n")
    bucket.delete("incoming/day.csv")
    assert bucket.objects.latest_version(BUCKET, "incoming/day.csv") == v1
    assert bucket.objects.latest_version(BUCKET, "incoming/day.csv.bak") == b2
    assert bucket.objects.latest_version(BUCKET, "incoming/day") is None
    bucket.delete("incoming/day")  # a delete marker on a key that never had a version
    assert bucket.objects.latest_version(BUCKET, "incoming/day") is None
    assert bucket.current("incoming/") == {"incoming/day.csv.bak": b2}
