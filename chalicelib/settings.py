"""The pipeline's settings: one frozen object read from the environment once. Nothing else reads os.environ.

The stage's values come from `.chalice/config.json` (Lambda environment variables); the local runner
sets the same variables from the same file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

# Variables naming one stage's resources; from_env derives them from STAGE when they are not set.
STAGE_RESOURCE_VARIABLES = ("TABLE_NAME", "BUCKET_NAME", "QUEUE_NAME", "DLQ_NAME")


def resource_names(stage: str) -> dict[str, str]:
    """The names of a stage's resources, by the variable that can override each (the one naming rule)."""
    return {"TABLE_NAME": f"MarketDataState-{stage}", "BUCKET_NAME": f"market-data-bucket-{stage}",
            "QUEUE_NAME": f"market-data-ingest-{stage}", "DLQ_NAME": f"market-data-ingest-dlq-{stage}"}


_DEV = resource_names("dev")

# The processing queue's trigger (the SQS event source mapping): Lambda gathers messages for up to the window,
# then invokes the processor with at most this many (and at most 6 MB of them). One invocation per gathered
# batch means one TicksProcessed event, one set of writes and one aggregation run per batch rather than per
# ten messages, for at most the window's delay.
PROCESSOR_BATCH_SIZE = 100
PROCESSOR_BATCHING_WINDOW_SECONDS = 1


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    stage: str = "dev"
    region: str = "us-east-1"
    table_name: str = _DEV["TABLE_NAME"]
    bucket_name: str = _DEV["BUCKET_NAME"]
    queue_name: str = _DEV["QUEUE_NAME"]
    dead_letter_queue_name: str = _DEV["DLQ_NAME"]
    event_bus_name: str = "default"
    event_source: str = "market-data.pipeline"
    report_batch_item_failures: bool = False
    # Lambda takes at most 6 MB per synchronous event, and API Gateway puts the body in the event as a JSON
    # string, where one byte can take up to 6 (a control character becomes \u00XX). So a body of at most
    # this size always reaches the function, which answers 202 or a 4xx, and a larger one that still fits
    # gets the function's 413. (Bigger data goes through S3.)
    max_body_bytes: int = 960 * 1024
    message_bytes: int = 240_000
    chunk_bytes: int = 4 * 1024 * 1024
    inline_chunk_bytes: int = 200_000
    json_object_max_bytes: int = 64 * 1024 * 1024
    max_errors: int = 20
    idempotency_ttl_seconds: int = 86_400
    # Payloads are read by the fast path first, which defers to the precise parsers on any doubt (same ticks
    # either way); FAST_PATH=false reads everything with the precise parsers alone.
    fast_path: bool = True
    # Aggregation: a symbol's marks are worked off in rounds of at most max_windows_per_run minutes under its
    # lease (renewed each round, so a round must take less than lease_seconds); one run takes at most
    # symbols_per_run symbols, spends at most symbol_slice_seconds on one and aggregate_seconds in all
    # (the Lambda's timeout is 300 s), then hands what is left on to new runs.
    max_windows_per_run: int = 10_000
    lease_seconds: int = 120
    symbols_per_run: int = 100
    symbol_slice_seconds: float = 20.0
    aggregate_seconds: float = 120.0
    # While ticks keep coming, a symbol's rounds start at least this long apart: the marks of a burst are
    # worked off in one round instead of one round each (a round rereads the partials of its whole minutes).
    # A round that took long (a live minute of many small requests) is followed by a longer gap, three times
    # its length, up to round_gap_max_seconds: rereading never takes more than about a quarter of the time.
    round_gap_seconds: float = 1.0
    round_gap_max_seconds: float = 5.0
    # Bounds for any uploaded object, whatever it holds.
    max_line_bytes: int = 1 << 20  # one CSV/NDJSON line; a longer line is that line's reject
    max_object_bytes: int = 8 << 30  # an object's (inflated) size
    gzip_max_ratio: int = 100  # inflated/compressed size, checked once an object inflates past gzip_ratio_floor
    gzip_ratio_floor_bytes: int = 64 << 20
    # SQS receives of a message before the queue's redrive policy moves it to the dead-letter queue
    # (infra/definitions.MAX_RECEIVE_COUNT); the processor says so in the ingestion's status on the last one.
    max_receive_count: int = 5
    # An ingestion that made no progress for this long is reported as stalled, not as still running.
    stalled_after_seconds: int = 6 * 3600
    # Base URL of the API for the status_url of POST /ingest ("" = taken from API Gateway's own request
    # context, or a path when there is none); never from the request's Host header.
    api_base_url: str = ""
    # Under `chalice local` (the Chalice CLI sets AWS_CHALICE_CLI_MODE) with no AWS_ENDPOINT_URL: the app talks
    # to real AWS, which a user who meant the local emulator should be told when it cannot.
    chalice_local_without_endpoint: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        stage = env.get("STAGE", "dev")
        names = {**resource_names(stage), **{k: env[k] for k in STAGE_RESOURCE_VARIABLES if k in env}}
        d = cls()
        return cls(
            stage=stage,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or d.region,
            table_name=names["TABLE_NAME"], bucket_name=names["BUCKET_NAME"], queue_name=names["QUEUE_NAME"],
            dead_letter_queue_name=names["DLQ_NAME"],
            event_bus_name=env.get("EVENT_BUS_NAME", d.event_bus_name),
            event_source=env.get("EVENT_SOURCE", d.event_source),
            report_batch_item_failures=_bool(env.get("REPORT_BATCH_ITEM_FAILURES"), False),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", d.max_body_bytes)),
            message_bytes=int(env.get("MESSAGE_BYTES", d.message_bytes)),
            chunk_bytes=int(env.get("CHUNK_BYTES", d.chunk_bytes)),
            inline_chunk_bytes=int(env.get("INLINE_CHUNK_BYTES", d.inline_chunk_bytes)),
            json_object_max_bytes=int(env.get("JSON_OBJECT_MAX_BYTES", d.json_object_max_bytes)),
            max_errors=int(env.get("MAX_ERRORS", d.max_errors)),
            fast_path=_bool(env.get("FAST_PATH"), d.fast_path),
            idempotency_ttl_seconds=int(env.get("IDEMPOTENCY_TTL_SECONDS", d.idempotency_ttl_seconds)),
            max_windows_per_run=int(env.get("MAX_WINDOWS_PER_RUN", d.max_windows_per_run)),
            lease_seconds=int(env.get("LEASE_SECONDS", d.lease_seconds)),
            symbols_per_run=int(env.get("SYMBOLS_PER_RUN", d.symbols_per_run)),
            symbol_slice_seconds=float(env.get("SYMBOL_SLICE_SECONDS", d.symbol_slice_seconds)),
            aggregate_seconds=float(env.get("AGGREGATE_SECONDS", d.aggregate_seconds)),
            round_gap_seconds=float(env.get("ROUND_GAP_SECONDS", d.round_gap_seconds)),
            round_gap_max_seconds=float(env.get("ROUND_GAP_MAX_SECONDS", d.round_gap_max_seconds)),
            max_line_bytes=int(env.get("MAX_LINE_BYTES", d.max_line_bytes)),
            max_object_bytes=int(env.get("MAX_OBJECT_BYTES", d.max_object_bytes)),
            gzip_max_ratio=int(env.get("GZIP_MAX_RATIO", d.gzip_max_ratio)),
            gzip_ratio_floor_bytes=int(env.get("GZIP_RATIO_FLOOR_BYTES", d.gzip_ratio_floor_bytes)),
            max_receive_count=int(env.get("MAX_RECEIVE_COUNT", d.max_receive_count)),
            stalled_after_seconds=int(env.get("STALLED_AFTER_SECONDS", d.stalled_after_seconds)),
            api_base_url=env.get("API_BASE_URL", d.api_base_url).rstrip("/"),
            chalice_local_without_endpoint=(_bool(env.get("AWS_CHALICE_CLI_MODE"), False)
                                            and not env.get("AWS_ENDPOINT_URL")),
        )

    @classmethod
    def for_stage(cls, stage: str | None, env: Mapping[str, str]) -> Settings:
        """Settings of ``stage`` (None: env STAGE, else dev), for tools that act on a stage from outside it.

        Resource names that ``env`` sets for another stage are dropped, so a shell that still carries one
        stage's variables cannot point a command for another stage at the wrong table or queue.
        """
        if stage is None or stage == env.get("STAGE", "dev"):
            return cls.from_env(env)
        kept = {k: v for k, v in env.items() if k not in STAGE_RESOURCE_VARIABLES}
        return cls.from_env({**kept, "STAGE": stage})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env(os.environ)


def stage_settings(stage: str | None = None) -> Settings:
    """Settings of a stage named on a command line (see Settings.for_stage), read from this environment."""
    return Settings.for_stage(stage, os.environ)
