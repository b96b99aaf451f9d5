"""The pipeline's error tree. Entry points map these to HTTP statuses in one place (chalicelib.api).

    PipelineError
    ├── InputError                 the caller sent something we cannot accept (4xx)
    │   ├── InvalidTicks           one or more records failed validation; carries the list (400)
    │   ├── InvalidQuery           a bad query-string parameter (400)
    │   ├── UnsupportedFormat      content type / file format we cannot read (415)
    │   ├── PayloadTooLarge        body over the configured limit (413)
    │   └── IdempotencyConflict    an Idempotency-Key reused with a different body (409)
    ├── NotFound                   an ingestion id or resource that does not exist (404)
    └── TransientError             a dependency failed; retrying may succeed (503)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecordError:
    """What was wrong with one record, and where: ``location`` is e.g. ``record 3`` or ``line 17``."""

    location: str
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.location}: {self.field}: {self.reason}"


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, object]:
        return {"error": self.code, "message": self.message}


class InputError(PipelineError):
    status = 400
    code = "BadRequest"


class InvalidTicks(InputError):
    code = "InvalidTicks"

    def __init__(self, errors: list[RecordError], total_errors: int | None = None) -> None:
        total = len(errors) if total_errors is None else total_errors
        super().__init__(f"{total} invalid record(s); nothing was ingested")
        self.errors = errors
        self.total_errors = total

    def as_dict(self) -> dict[str, object]:
        body = super().as_dict()
        body["error_count"] = self.total_errors
        body["errors"] = [e.as_dict() for e in self.errors]
        return body


class InvalidQuery(InputError):
    code = "InvalidQuery"


class UnsupportedFormat(InputError):
    status = 415
    code = "UnsupportedMediaType"


class PayloadTooLarge(InputError):
    status = 413
    code = "PayloadTooLarge"


class IdempotencyConflict(InputError):
    status = 409
    code = "IdempotencyConflict"


class NotFound(PipelineError):
    status = 404
    code = "NotFound"


class TransientError(PipelineError):
    status = 503
    code = "ServiceUnavailable"
