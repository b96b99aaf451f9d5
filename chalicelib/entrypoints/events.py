"""Lambda event entry points: S3 Object Created, an SQS batch, the aggregator's events and the schedule.

Each event is read with its edge model (chalicelib/schemas.py) and handed to one use case.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..domain.errors import BatchFailed
from ..observability import flush
from ..ports import announced_marks
from ..schemas import (
    AGGREGATION_PENDING,
    AggregationPendingDetail,
    ObjectCreatedDetail,
    TicksProcessedDetail,
    detail_of,
)

if TYPE_CHECKING:
    from ..usecases.aggregate import Aggregate
    from ..usecases.ingest_object import IngestObject
    from ..usecases.process_batch import ProcessBatch

F = TypeVar("F", bound=Callable[..., Any])


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
def on_object_created(detail: dict[str, Any], ingest: IngestObject) -> dict[str, Any]:
    event = detail_of(ObjectCreatedDetail, detail)
    return ingest(event.bucket.name, event.object.key, event.object.version_id)


def _receive_count(record: dict[str, Any]) -> int:
    raw = (record.get("attributes") or {}).get("ApproximateReceiveCount", "1")
    return int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() else 1


@flushes_metrics
def on_sqs_batch(records: list[dict[str, Any]], process: ProcessBatch, report_item_failures: bool) -> dict[str, Any]:
    messages = [(r["messageId"], r["body"], _receive_count(r)) for r in records]
    failed = process(messages).failed_message_ids
    if failed:
        if report_item_failures:
            return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
        # Without ReportBatchItemFailures on the trigger, returning failures would delete them:
        # fail the batch instead. Processing is idempotent, so the retry of the good ones is safe.
        raise BatchFailed(f"{len(failed)} of {len(messages)} message(s) failed; retrying the batch")
    return {"batchItemFailures": []}


@flushes_metrics
def on_aggregator_event(detail_type: str, detail: dict[str, Any], aggregate: Aggregate) -> dict[str, Any]:
    """TicksProcessed (from the processor) or AggregationPending (an aggregator handing symbols on)."""
    symbols: set[str] = set()
    announced: list[tuple[str, int, str]] = []
    try:
        if detail_type == AGGREGATION_PENDING:
            symbols = set(detail_of(AggregationPendingDetail, detail).symbols)
        else:
            processed = detail_of(TicksProcessedDetail, detail)
            symbols = {change.symbol for change in processed.changes}
            announced = announced_marks(((c.symbol, c.first_minute_ns, c.last_minute_ns) for c in processed.changes),
                                        processed.mark_tokens)
    except ValueError:  # not a detail this pipeline wrote: the event still says "windows are dirty"
        pass
    return aggregate(symbols or None, announced)


@flushes_metrics
def on_schedule(aggregate: Aggregate) -> dict[str, Any]:
    return aggregate(None)
