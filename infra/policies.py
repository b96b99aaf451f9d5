"""What each function may do: the actions its code calls (see chalicelib/adapters and chalicelib/usecases),
on the resources it touches, and nothing else. Rendered twice from this one table:

- for the packaged stack (infra/template.py): exact ARNs of the stack's own resources;
- for `chalice deploy` (.chalice/policies/<stage>/<function>.json, which config.json points to): Chalice
  copies a policy file verbatim, so those ARNs are literal, with the region and account left open.

The only `*` resource is X-Ray's, which has no resource-level permissions. tests/cloud/test_least_privilege.py
runs every handler on moto and checks that the calls it makes are exactly the data actions granted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.schemas import AGGREGATION_PENDING, BARS_REVISED, TICKS_PROCESSED

from .definitions import AGGREGATOR, AGGREGATOR_SCHEDULE, API_HANDLER, INGESTION, PROCESSOR, Stage

# Resource kinds a grant can name.
TABLE = "table"
BUCKET = "bucket"
OBJECTS = "objects"
QUEUE = "queue"
EVENT_BUS = "event-bus"
EVENTS_DLQ = "events-dlq"
INGEST_DLQ = "ingest-dlq"
LOG_GROUP = "log-group"
ANY = "any"



@dataclass(frozen=True)
class Grant:
    sid: str
    actions: tuple[str, ...]
    resource: str
    detail_type: str | None = None  # PutEvents only with the pipeline's source and this detail-type


# Reads of an upload name its version (the S3 event's version-id, then the one HeadObject returned), and
# HeadObject/GetObject with a VersionId need s3:GetObjectVersion. An object written before versioning was
# enabled, or while it was suspended, has the version id "null": the code reads it without a VersionId
# (chalicelib/adapters/s3.py), and that needs s3:GetObject. Both, for every function that reads uploads.
_READ_UPLOADS = Grant("ReadUploads", ("s3:GetObject", "s3:GetObjectVersion"), OBJECTS)
# "A key's newest version is its truth": HeadObject without a VersionId names the current version (IAM:
# s3:GetObject; there is no narrower action for a HEAD). Functions that read uploads have it in _READ_UPLOADS.
_CURRENT_VERSION = Grant("FindCurrentVersion", ("s3:GetObject",), OBJECTS)
# A key whose current version is a delete marker: ListObjectVersions finds the newest version under it
# (IAM: s3:ListBucketVersions, on the bucket).
_LATEST_VERSION = Grant("FindLatestVersion", ("s3:ListBucketVersions",), BUCKET)
# An upload deleted before its event is handled, or a key asked for its current version once every version
# is gone: S3 answers HeadObject with 404 only to a caller that may list the bucket, 403 to any other, and 403
# would hide "gone" among real permission errors. No ListObjects call is made; the permission only changes
# S3's answer.
TELL_MISSING = "TellMissingObjects"
_TELL_MISSING = Grant(TELL_MISSING, ("s3:ListBucket",), BUCKET)
_QUEUE_SEND = Grant("QueueTicks", ("sqs:GetQueueUrl", "sqs:SendMessage"), QUEUE)
_AGGREGATE = (
    # Bars are written by TransactWriteItems (a ConditionCheck of the symbol's lease, then Puts and Deletes),
    # which IAM authorises as the actions inside it.
    Grant("State", ("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
                    "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"), TABLE),
    _CURRENT_VERSION, _LATEST_VERSION, _TELL_MISSING,
    Grant("PublishBarsRevised", ("events:PutEvents",), EVENT_BUS, detail_type=BARS_REVISED),
    Grant("HandOn", ("events:PutEvents",), EVENT_BUS, detail_type=AGGREGATION_PENDING),
)

# Data actions, per function (by Chalice name).
GRANTS: dict[str, tuple[Grant, ...]] = {
    # POST /ingest (idempotency record; ingestion metadata with its time-index entries, BatchWriteItem;
    # queueing; when queueing fails, the withdrawal of the request: a count on its symbols' leases, UpdateItem,
    # and dirty marks); GET /bars, /symbols; GET /ingestions/{id} (chunk results, and for a file whether a newer version
    # replaced it: HeadObject, and ListObjectVersions under a delete marker); GET /ingestions (the time index
    # and an object key's ingestions, Query; the records of a key's ingestions, BatchGetItem).
    API_HANDLER: (Grant("State", ("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:PutItem",
                                  "dynamodb:Query", "dynamodb:UpdateItem"), TABLE),
                  _CURRENT_VERSION, _LATEST_VERSION, _TELL_MISSING, _QUEUE_SEND),
    # HeadObject/GetObject of the uploaded version, whether it is the key's newest, ingestion metadata
    # (a conditional PutItem answers with the stored record when an event is redelivered; later writes and
    # the time-index entries, BatchWriteItem), the key's ingestions (UpdateItem ADD), the windows of the
    # versions it replaces (Query, BatchWriteItem of dirty marks), queueing of the chunks.
    INGESTION: (
        _READ_UPLOADS, _LATEST_VERSION, _TELL_MISSING,
        Grant("State", ("dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"),
              TABLE),
        _QUEUE_SEND,
    ),
    # Ranged reads, partials and dirty marks (BatchWriteItem), chunk results, whether a file's version still
    # counts once its chunks' results are stored (BatchGetItem of ingestions, HeadObject, ListObjectVersions
    # under a delete marker; if not, a withdrawal counted on its symbols' leases, UpdateItem), the TicksProcessed
    # event, and what the SQS trigger needs to poll the queue on the
    # function's behalf.
    PROCESSOR: (
        _READ_UPLOADS, _LATEST_VERSION, _TELL_MISSING,
        Grant("State", ("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:PutItem",
                        "dynamodb:UpdateItem"), TABLE),
        Grant("PollQueue", ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"), QUEUE),
        # A message no retry can help (not the pipeline's, or a bug) goes to the dead-letter queue at once.
        Grant("SetAside", ("sqs:GetQueueUrl", "sqs:SendMessage"), INGEST_DLQ),
        Grant("PublishTicksProcessed", ("events:PutEvents",), EVENT_BUS, detail_type=TICKS_PROCESSED),
    ),
    # Dirty marks, partials and bars (Query, BatchGetItem), the symbol's lease (UpdateItem), bars (TransactWriteItems),
    # marks (BatchWriteItem delete), symbols (UpdateItem), whether a source still counts (BatchGetItem of ingestions,
    # HeadObject, ListObjectVersions under a delete marker), the BarsRevised event, and AggregationPending to hand
    # symbols on.
    AGGREGATOR: _AGGREGATE,
    AGGREGATOR_SCHEDULE: _AGGREGATE,
}

# Invoked asynchronously (EventBridge) with a dead-letter queue: an S3 event DataIngestion failed to handle
# is a file never ingested, so it is kept. Lambda writes it with the function's own role, and SAM adds that
# permission only to roles it creates itself. (The aggregator's events are hints, see infra/template.py.)
DEAD_LETTER_FUNCTIONS = (INGESTION,)
_DEAD_LETTER = Grant("DeadLetter", ("sqs:SendMessage",), EVENTS_DLQ)
_TRACING = Grant("Tracing", ("xray:PutTraceSegments", "xray:PutTelemetryRecords"), ANY)


def grants(function: str, packaged: bool) -> tuple[Grant, ...]:
    """Every grant of one function: its data actions, logging, tracing and (packaged) its dead letters."""
    log_actions: tuple[str, ...] = ("logs:CreateLogStream", "logs:PutLogEvents")
    if not packaged:
        # `chalice deploy` creates the log group itself, but not necessarily before the first invocation.
        log_actions = ("logs:CreateLogGroup", *log_actions)
    extra = (_DEAD_LETTER,) if packaged and function in DEAD_LETTER_FUNCTIONS else ()
    return (*GRANTS[function], *extra, Grant("Logs", log_actions, LOG_GROUP), _TRACING)


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _statement(grant: Grant, resource: Any, stage: Stage) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": grant.sid, "Effect": "Allow", "Action": list(grant.actions),
                                 "Resource": resource}
    if grant.detail_type:
        statement["Condition"] = {"StringEquals": {"events:source": [stage.event_source],
                                                   "events:detail-type": [grant.detail_type]}}
    return statement


def event_bus_name(stage: Stage) -> str:
    return stage.environment.get("EVENT_BUS_NAME") or "default"


def packaged_policy(stage: Stage, function: str, refs: dict[str, str]) -> dict[str, Any]:
    """The policy for the packaged stack. refs maps resource kinds to the stack's logical IDs
    (TABLE, BUCKET, QUEUE, EVENTS_DLQ, INGEST_DLQ, LOG_GROUP)."""
    resources = {
        TABLE: {"Fn::GetAtt": [refs[TABLE], "Arn"]},
        BUCKET: {"Fn::GetAtt": [refs[BUCKET], "Arn"]},
        OBJECTS: {"Fn::Sub": f"${{{refs[BUCKET]}.Arn}}/*"},
        QUEUE: {"Fn::GetAtt": [refs[QUEUE], "Arn"]},
        EVENTS_DLQ: {"Fn::GetAtt": [refs[EVENTS_DLQ], "Arn"]},
        INGEST_DLQ: {"Fn::GetAtt": [refs[INGEST_DLQ], "Arn"]},
        LOG_GROUP: {"Fn::GetAtt": [refs[LOG_GROUP], "Arn"]},
        EVENT_BUS: {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/"
                               + event_bus_name(stage)},
        ANY: "*",
    }
    return _document([_statement(g, resources[g.resource], stage) for g in grants(function, packaged=True)])


def chalice_deploy_policy(stage: Stage, function: str) -> dict[str, Any]:
    """The policy file for `chalice deploy`: literal ARNs, any region and account (Chalice cannot fill them in)."""
    resources = {
        TABLE: f"arn:aws:dynamodb:*:*:table/{stage.table_name}",
        BUCKET: f"arn:aws:s3:::{stage.bucket_name}",
        OBJECTS: f"arn:aws:s3:::{stage.bucket_name}/*",
        QUEUE: f"arn:aws:sqs:*:*:{stage.queue_name}",
        INGEST_DLQ: f"arn:aws:sqs:*:*:{stage.dead_letter_queue_name}",
        EVENT_BUS: f"arn:aws:events:*:*:event-bus/{event_bus_name(stage)}",
        LOG_GROUP: f"arn:aws:logs:*:*:log-group:/aws/lambda/{stage.chalice_function_name(function)}:*",
        ANY: "*",
    }
    return _document([_statement(g, resources[g.resource], stage) for g in grants(function, packaged=False)])


def policy_file(stage: Stage, function: str) -> str:
    """Where config.json should point iam_policy_file (relative to .chalice/)."""
    return f"policies/{stage.name}/{function}.json"
