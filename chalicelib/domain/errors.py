"""The pipeline's error tree: every error it raises on purpose. Entry points map them to their protocol in one
place each (HTTP statuses: chalicelib/entrypoints/api.py; exit codes: chalicelib/entrypoints/cli.py).

    PipelineError
    ├── InputError                 the caller sent something we cannot accept
    │   ├── InvalidTicks           one or more records failed validation; carries the located rejects
    │   ├── InvalidQuery           a bad query-string parameter or command-line option
    │   ├── UnsupportedFormat      a content type or file format we cannot read
    │   ├── PayloadTooLarge        a body over the configured limit
    │   ├── IdempotencyConflict    an Idempotency-Key reused with a different body
    │   └── FileRejected           a whole file cannot be ingested (format, header, compression, a limit)
    ├── NotFound                   an ingestion, object or resource that does not exist
    ├── TransientError             a dependency failed in a way that retrying may fix (throttling, timeouts)
    ├── QueueRejected              the queue refused a message (too big, bad characters): retrying cannot fix it
    ├── OperationIncomplete        an operator command stopped part-way; carries what it did before
    ├── LeaseLost                  another run took over a symbol's aggregation: this run's writes were refused
    └── BatchFailed                some messages of an SQS batch failed, and the trigger cannot be told which

A record's problem is not an exception but a RecordError value: where (``line 17``, ``record 3``), which
field, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(PipelineError):
    """The caller sent something we cannot accept."""


class InvalidTicks(InputError):
    def __init__(self, errors: list[RecordError], total_errors: int | None = None) -> None:
        total = len(errors) if total_errors is None else total_errors
        super().__init__(f"{total} invalid record(s); nothing was ingested")
        self.errors = errors
        self.total_errors = total


class InvalidQuery(InputError):
    pass


class UnsupportedFormat(InputError):
    pass


class PayloadTooLarge(InputError):
    pass


class IdempotencyConflict(InputError):
    pass


class FileRejected(InputError):
    """A whole file cannot be ingested; the message says why."""


class NotFound(PipelineError):
    pass


class TransientError(PipelineError):
    pass


class QueueRejected(PipelineError):
    pass


class OperationIncomplete(PipelineError):
    """An operation stopped part-way; ``result`` tells what it did before."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class LeaseLost(PipelineError):
    """A symbol's lease passed to another run (this one was too slow): its fenced writes were refused."""


class BatchFailed(PipelineError):
    """Raised to make Lambda retry the whole batch when the trigger cannot report item failures."""
