"""Ingestions as records: what was received, what became of it, and the ids that name it.

An ingestion is one request body or one object version. It is split into chunks (queue messages); each
chunk, once processed, leaves a ChunkResult, or a ChunkFailure when it could not be processed. The
ingestion's status is stored while it is being planned (scanning, queued, rejected...) and derived from its
chunks afterwards (processing, processed, failed, stalled: see ``view``).

Stored as JSON documents whose keys are those of ``to_doc``; ``from_doc`` reads them back.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from .errors import RecordError
from .timefmt import NS_PER_S, format_ns

MAX_ID_CHARS = 80
API_PREFIX = "api-"
# Ids this pipeline makes: "api-" or "s3-" followed by hex digits.
INGESTION_ID_RE = re.compile(r"(?:api|s3)-[0-9a-f]{1,64}")
# S3's version id of an object written while the bucket was not versioning: not an id to ask for.
NULL_VERSION = "null"


class Status(StrEnum):
    SCANNING = "scanning"
    QUEUED = "queued"
    PROCESSING = "processing"
    PROCESSED = "processed"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    STALLED = "stalled"


IN_PROGRESS = frozenset({Status.SCANNING, Status.QUEUED, Status.PROCESSING})


class Source(StrEnum):
    API = "api"
    S3 = "s3"


def real_version(version_id: str | None) -> str | None:
    """An S3 version id worth naming in a request: None for none and for S3's "null"."""
    return None if version_id in (None, "", NULL_VERSION) else version_id


def api_ingestion_id(received_ns: int, token: str) -> str:
    """A request's id: its receipt time in ms (so ids sort by arrival) and 20 hex digits of a random token."""
    return f"{API_PREFIX}{received_ns // 1_000_000:012x}{token[:20]}"


def is_request(ingestion_id: str) -> bool:
    """Whether the ingestion is a request to POST /ingest (else an object version)."""
    return ingestion_id.startswith(API_PREFIX)


def object_ingestion_id(bucket: str, key: str, version_or_etag: str) -> str:
    """An object version's id: the same version always gets the same id (an event delivered twice is one)."""
    return "s3-" + hashlib.sha256(f"{bucket}/{key}#{version_or_etag}".encode()).hexdigest()[:32]


def source_id(ingestion_id: str, chunk: int) -> str:
    """The id of one chunk as the source of partial aggregates: "<ingestion>#<chunk:06d>"."""
    return f"{ingestion_id}#{chunk:06d}"


def ingestion_of(source: str) -> str:
    """The ingestion id of a source id."""
    return source.split("#", 1)[0]


def source_rank(received_ns: int, ingestion_id: str) -> str:
    """How a source's ticks rank against another's with the same timestamp: by time of receipt."""
    return f"{received_ns:020d}:{ingestion_id}"


@dataclass(frozen=True)
class StoredObject:
    """The S3 object version an ingestion reads."""

    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int

    def to_doc(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id, "etag": self.etag,
                "size": self.size}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> StoredObject:
        return cls(doc["bucket"], doc["key"], doc.get("version_id"), doc.get("etag", ""), int(doc.get("size", 0)))


def _errors(docs: list[dict[str, Any]] | None) -> tuple[RecordError, ...]:
    return tuple(RecordError(d["location"], d["field"], d["reason"]) for d in docs or [])


@dataclass(frozen=True)
class Ingestion:
    ingestion_id: str
    source: Source
    status: Status
    received_ns: int
    accepted: int | None = None  # a request's ticks; for a file, the sum over its chunks
    rejected: int = 0  # rejected before any chunk (a file's over-long lines)
    chunks: int | None = None  # known once planned
    errors: tuple[RecordError, ...] = ()
    format: str | None = None
    object: StoredObject | None = None

    def but(self, **changes: Any) -> Ingestion:
        return replace(self, **changes)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ingestion_id": self.ingestion_id, "source": self.source.value, "status": self.status.value,
            "received_ns": self.received_ns, "accepted": self.accepted, "rejected": self.rejected,
            "chunks": self.chunks, "errors": [e.as_dict() for e in self.errors],
        }
        if self.format is not None:
            doc["format"] = self.format
        if self.object is not None:
            doc["object"] = self.object.to_doc()
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Ingestion:
        obj = doc.get("object")
        return cls(
            ingestion_id=doc["ingestion_id"], source=Source(doc["source"]), status=Status(doc["status"]),
            received_ns=int(doc["received_ns"]), accepted=doc.get("accepted"), rejected=int(doc.get("rejected", 0)),
            chunks=doc.get("chunks"), errors=_errors(doc.get("errors")), format=doc.get("format"),
            object=StoredObject.from_doc(obj) if obj else None,
        )


@dataclass(frozen=True)
class ChunkResult:
    """A processed chunk: its counts, its first rejects, and the minutes it touched per symbol."""

    chunk: int
    accepted: int
    rejected: int
    processed_ns: int
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)  # symbol -> (first, last minute)
    errors: tuple[RecordError, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return {"chunk": self.chunk, "accepted": self.accepted, "rejected": self.rejected,
                "windows": {s: [lo, hi] for s, (lo, hi) in self.windows.items()},
                "errors": [e.as_dict() for e in self.errors], "processed_ns": self.processed_ns}


@dataclass(frozen=True)
class ChunkFailure:
    """A chunk that could not be processed: ``final`` once its message is in the dead-letter queue."""

    chunk: int
    reason: str
    final: bool
    failed_ns: int
    attempts: int | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"chunk": self.chunk, "state": "failed" if self.final else "retrying", "reason": self.reason,
                "attempts": self.attempts, "failed_ns": self.failed_ns}


ChunkRecord = ChunkResult | ChunkFailure


def chunk_from_doc(doc: dict[str, Any]) -> ChunkRecord:
    if "state" in doc:
        return ChunkFailure(int(doc["chunk"]), doc["reason"], doc["state"] == "failed", int(doc["failed_ns"]),
                            doc.get("attempts"))
    return ChunkResult(int(doc["chunk"]), int(doc["accepted"]), int(doc["rejected"]), int(doc["processed_ns"]),
                       {s: (int(lo), int(hi)) for s, (lo, hi) in doc.get("windows", {}).items()},
                       _errors(doc.get("errors")))


class ClaimState(StrEnum):
    PENDING = "pending"  # claimed by an attempt that has not finished (or never will)
    DONE = "done"  # answered: replay ``response``


@dataclass(frozen=True)
class IdempotencyClaim:
    """What an Idempotency-Key stands for: a body (by hash) and the ingestion made for it."""

    body_hash: str
    ingestion_id: str
    received_ns: int
    state: ClaimState
    response: dict[str, Any] | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = {"hash": self.body_hash, "ingestion_id": self.ingestion_id, "received_ns": self.received_ns,
               "state": self.state.value}
        if self.response is not None:
            doc["response"] = self.response
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> IdempotencyClaim:
        return cls(doc["hash"], doc["ingestion_id"], int(doc["received_ns"]), ClaimState(doc["state"]),
                   doc.get("response"))


def view(ingestion: Ingestion, chunks: list[ChunkRecord], superseded: bool, now_ns: int, stalled_after_s: int,
         max_errors: int) -> dict[str, Any]:
    """What GET /ingestions/{id} answers. Never "in progress" for ever: a chunk that failed for good (it is
    in the dead-letter queue) makes the ingestion ``failed``, and one that made no progress for
    ``stalled_after_s`` (a crashed function leaves no record) is ``stalled``."""
    done = [c for c in chunks if isinstance(c, ChunkResult)]
    failures = [c for c in chunks if isinstance(c, ChunkFailure)]
    status = ingestion.status
    total = ingestion.chunks
    if ingestion.source is Source.S3 and status is not Status.SUPERSEDED and superseded:
        status = Status.SUPERSEDED
    elif status is Status.QUEUED and total is not None:
        if len(done) >= total:
            status = Status.PROCESSED
        elif any(f.final for f in failures):
            status = Status.FAILED
        elif chunks:
            status = Status.PROCESSING
    accepted = ingestion.accepted if ingestion.source is Source.API else sum(c.accepted for c in done)
    errors = [e.as_dict() for e in ingestion.errors]
    errors += [{"location": f"chunk {f.chunk}", "field": "-", "reason": f.reason} for f in failures]
    for chunk in done:
        errors += [e.as_dict() for e in chunk.errors]
    if status in IN_PROGRESS:
        last = max([ingestion.received_ns, *(c.processed_ns if isinstance(c, ChunkResult) else c.failed_ns
                                             for c in chunks)])
        idle_s = (now_ns - last) // NS_PER_S
        if idle_s > stalled_after_s:
            errors.insert(0, {"location": "ingestion", "field": "-", "reason": (
                f"no progress for {idle_s} s while {status.value}: a function may have crashed; see the dead-letter "
                "queues (dlq list), and replay the file or send the request again")})
            status = Status.STALLED
    out: dict[str, Any] = {
        "ingestion_id": ingestion.ingestion_id, "source": ingestion.source.value, "status": status.value,
        "received_at": format_ns(ingestion.received_ns), "accepted": accepted,
        "rejected": ingestion.rejected + sum(c.rejected for c in done),
        "chunks": {"total": total, "processed": len(done), "failed": sum(f.final for f in failures)},
        "errors": errors[:max_errors],
    }
    if done and status is Status.PROCESSED:
        out["completed_at"] = format_ns(max(c.processed_ns for c in done))
    if ingestion.object is not None:
        out["object"] = ingestion.object.to_doc()
    return out
