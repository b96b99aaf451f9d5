"""Event entry points: S3 object created, SQS batch, aggregation events and schedule."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from .observability import flush
from .services import Pipeline
from .settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


class BatchFailed(Exception):
    """Raised to make Lambda retry the whole batch when the trigger cannot report item failures."""


def flushes_metrics(function: F) -> F:
    """Emit the invocation's metrics (EMF, in the log) however the handler ends."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            flush()

    return wrapper  # type: ignore[return-value]


@flushes_metrics
def on_object_created(detail: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    bucket = detail["bucket"]["name"]
    obj = detail["object"]
    return pipeline.ingest_object(bucket, obj["key"], obj.get("version-id"))


@flushes_metrics
def on_sqs_batch(records: list[dict[str, Any]], pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    messages = [(r["messageId"], r["body"], _receive_count(r)) for r in records]
    outcome = pipeline.process_batch(messages)
    failed = outcome.failed_message_ids
    if failed:
        if settings.report_batch_item_failures:
            return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
        # Without ReportBatchItemFailures on the trigger, returning failures would delete them:
        # fail the batch instead. Processing is idempotent, so the retry of the good ones is safe.
        raise BatchFailed(f"{len(failed)} of {len(messages)} message(s) failed; retrying the batch")
    return {"batchItemFailures": []}


def _receive_count(record: dict[str, Any]) -> int:
    raw = (record.get("attributes") or {}).get("ApproximateReceiveCount", "1")
    return int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() else 1


@flushes_metrics
def on_ticks_processed(detail: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    symbols = {c["symbol"] for c in detail.get("changes", []) if isinstance(c, dict) and "symbol" in c}
    return pipeline.aggregate(symbols or None)


@flushes_metrics
def on_schedule(pipeline: Pipeline) -> dict[str, Any]:
    return pipeline.aggregate(None)
