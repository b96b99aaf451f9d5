"""Reading moto's request recording: who made each AWS request, what it was, and what DynamoDB would bill for it.

moto records every request that reaches any of its service backends into the file named by
MOTO_RECORDER_FILEPATH while recording is on (one JSON object a line: headers, method, url, body). The emulator
is the only AWS endpoint of every component, so the recording holds all of their requests, counted where they
arrive, with nothing patched in the code under test.

Each request is put in one category:

- ``work``: the pipeline's requests (the API process, and the functions the driver invokes);
- ``poll``: ReceiveMessage on the processing queue; the event-source pollers make them continuously (long polls),
  so their number depends on wall time, not on ticks;
- ``local``: the driver's requests to its local events queue, which stands in for EventBridge invoking Lambda
  (moto's EventBridge cannot); a deployment makes no such request;
- ``bench-read``: requests made while answering the benchmark's own GET /bars and GET /ingestions/{id} (served by
  a second API process whose AWS clients carry the user-agent app id ``BENCH_READER_APP``);
- ``bench-client``: the benchmark's own S3 uploads and deletes (app id ``BENCH_CLIENT_APP``).

DynamoDB capacity is estimated from the request bodies with DynamoDB's item-size rules: PutItem, and each put of
BatchWriteItem, ``ceil(item size / 1 KB)`` write units, at least 1; DeleteItem and batch deletes 1 (the size of
the deleted item is not in the request); UpdateItem ``ceil((key + values it sets) / 1 KB)``, at least 1 (the
stored item may be larger); TransactWriteItems twice that for each Put, Update and Delete, its ConditionChecks
counted apart. moto's recorder keeps requests, not responses, so read units (which depend on the items a read
returns) are not estimated: reads are counted as requests, strongly consistent ones apart.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_READER_APP = "mdbench-reader"
BENCH_CLIENT_APP = "mdbench-client"
MINUTE_NS = 60_000_000_000
BATCH_WRITE_ITEMS = 25

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_HEAD_TARGET = re.compile(r'"X-Amz-Target": "([^"]+)"', re.IGNORECASE)
_HEAD_METHOD = re.compile(r'"method": "([A-Z]+)"')
_ENTRY_START = re.compile(r'(?=\{"headers": )')
_TARGET_SERVICE = {"DynamoDB": "dynamodb", "AmazonSQS": "sqs", "AWSEvents": "events"}
BIG_LINE = 1 << 20  # an entry this long is an upload: its body is skipped, not decoded

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
DYNAMODB_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
SQS_WRITES = {"SendMessage", "SendMessageBatch", "DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility",
              "ChangeMessageVisibilityBatch"}
WRITES = DYNAMODB_WRITES | SQS_WRITES | {"PutEvents"}

Key = tuple[str, str, str]  # (category, service, operation)


# ---------------------------------------------------------------------------------------------- DynamoDB sizes


def number_size(text: str) -> int:
    """Bytes DynamoDB counts for a number: one per two significant digits, plus one."""
    mantissa = text.lstrip("+-").lower().split("e")[0].replace(".", "")
    digits = mantissa.strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB's JSON form ({"S": ...}, {"N": ...}, {"M": {...}}...)."""
    if not value:
        return 0
    kind, v = next(iter(value.items()))
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode()) for x in v)
    if kind == "NS":
        return sum(number_size(x) for x in v)
    if kind == "BS":
        return sum(len(base64.b64decode(x)) for x in v)
    if kind == "L":
        return 3 + sum(attribute_size(x) + 1 for x in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(x) + 1 for k, x in v.items())
    return 0


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _update_size(request: dict[str, Any]) -> int:
    values = request.get("ExpressionAttributeValues") or {}
    return item_size(request.get("Key") or {}) + sum(attribute_size(v) for v in values.values())


def write_units(operation: str, body: dict[str, Any]) -> tuple[int, int]:
    """(estimated write units, transaction condition checks) of one DynamoDB request."""
    if operation == "PutItem":
        return units(item_size(body.get("Item") or {})), 0
    if operation == "UpdateItem":
        return units(_update_size(body)), 0
    if operation == "DeleteItem":
        return 1, 0
    if operation == "BatchWriteItem":
        total = 0
        for requests in (body.get("RequestItems") or {}).values():
            for request in requests:
                put = request.get("PutRequest")
                total += units(item_size(put.get("Item") or {})) if put else 1
        return total, 0
    if operation == "TransactWriteItems":
        total = checks = 0
        for entry in body.get("TransactItems") or []:
            if "Put" in entry:
                total += 2 * units(item_size(entry["Put"].get("Item") or {}))
            elif "Update" in entry:
                total += 2 * units(_update_size(entry["Update"]))
            elif "Delete" in entry:
                total += 2
            elif "ConditionCheck" in entry:
                checks += 1
        return total, checks
    return 0, 0


def consistent_read(operation: str, body: dict[str, Any]) -> bool:
    if operation == "TransactGetItems":
        return True
    if operation == "BatchGetItem":
        return any(spec.get("ConsistentRead") for spec in (body.get("RequestItems") or {}).values())
    return bool(body.get("ConsistentRead"))


# ---------------------------------------------------------------------------------------------- one request


def _headers(entry: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in entry.get("headers", {}).items()}


def _origin(user_agent: str) -> str | None:
    if f"app/{BENCH_READER_APP}" in user_agent:
        return "bench-read"
    if f"app/{BENCH_CLIENT_APP}" in user_agent:
        return "bench-client"
    return None


def s3_operation(method: str, url: str, headers: dict[str, str]) -> str:
    path, _, query = url.split("://", 1)[-1].partition("/")[2].partition("?")
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    bucket, _, key = path.partition("/")
    if key:
        if method == "GET":
            return "GetObject (range)" if "range" in headers else "GetObject"
        if method == "PUT":
            if "partNumber" in params:
                return "UploadPart"
            return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
        if method == "POST":
            return "CreateMultipartUpload" if "uploads" in params else "CompleteMultipartUpload"
        return {"HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, f"{method} object")
    if method == "GET":
        if "versions" in params:
            return "ListObjectVersions"
        return "ListObjectsV2" if "list-type" in params else "ListObjects"
    return f"{method} bucket" if bucket else f"{method} /"


def body_json(entry: dict[str, Any]) -> Any:
    """The request body as JSON (JSON-protocol services), or None."""
    raw = entry.get("body") or ""
    try:
        data = base64.b64decode(raw) if entry.get("body_encoded") else raw.encode()
        return json.loads(data) if data else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Request:
    category: str
    service: str
    operation: str
    entry: dict[str, Any]


def classify(entry: dict[str, Any], events_queue: str, ingest_queue: str) -> Request:
    headers = _headers(entry)
    match = _SCOPE.search(headers.get("authorization", ""))
    service = match.group(1) if match else "unsigned"
    target = headers.get("x-amz-target")
    if target:
        operation = target.rsplit(".", 1)[-1]
    elif service == "s3":
        operation = s3_operation(entry.get("method", "?"), entry.get("url", ""), headers)
    else:
        method, url = entry.get("method", "?"), entry.get("url", "")
        action = re.search(r"(?:^|[?&])Action=([A-Za-z]+)", url + "&" + str(entry.get("body") or ""))
        operation = action.group(1) if action else f"{method} {url.split('?')[0]}"
    category = _origin(headers.get("user-agent", ""))
    if category is None:
        category = "work"
        if service == "sqs":
            queue_url = str((body_json(entry) or {}).get("QueueUrl", ""))
            if queue_url.endswith("/" + events_queue):
                category = "local"
            elif operation == "ReceiveMessage" and queue_url.endswith("/" + ingest_queue):
                category = "poll"
    return Request(category, service, operation, entry)


def _parse_line(line: str) -> dict[str, Any] | None:
    """One recorded entry; an upload's body is cut off unread (it is not needed and can be gigabytes)."""
    if len(line) > BIG_LINE:
        cut = line.find(', "body": ')
        if cut > 0:
            line = line[:cut] + "}"
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _lines(path: Path, offset: int = 0) -> Iterator[tuple[str, int]]:
    """Complete lines from ``offset`` on, with the offset after each."""
    with path.open("rb") as f:
        f.seek(offset)
        while True:
            line = f.readline()
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            yield line.decode("utf-8", "replace"), offset


# ---------------------------------------------------------------------------------------------- a whole recording


@dataclass
class OpStats:
    requests: int = 0
    write_units: int = 0
    condition_checks: int = 0
    consistent: int = 0
    imputed: int = 0  # requests whose line the recorder damaged: counted, their write units imputed


@dataclass
class Tally:
    """What a recording holds, by (category, service, operation)."""

    ops: dict[Key, OpStats] = field(default_factory=dict)
    # Per message sent to the processing queue: the (symbol, minute) windows of the ticks it carries, or None
    # when its body is not a message of ticks.
    message_windows: list[int | None] = field(default_factory=list)
    damaged: int = 0  # lines that are not one JSON entry (concurrent writes of the recorder can interleave)
    damaged_targets: Counter[str] = field(default_factory=Counter)

    def stats(self, key: Key) -> OpStats:
        return self.ops.setdefault(key, OpStats())

    def total(self, category: str, service: str | None = None, operation: str | None = None) -> int:
        return sum(s.requests for (c, sv, op), s in self.ops.items()
                   if c == category and service in (None, sv) and operation in (None, op))

    def write_units(self, category: str = "work") -> int:
        return sum(s.write_units for (c, _, _), s in self.ops.items() if c == category)

    def condition_checks(self, category: str = "work") -> int:
        return sum(s.condition_checks for (c, _, _), s in self.ops.items() if c == category)

    def reads(self, category: str = "work") -> tuple[int, int]:
        """(DynamoDB read requests, of which strongly consistent)."""
        found = [s for (c, sv, op), s in self.ops.items() if c == category and sv == "dynamodb"
                 and op in DYNAMODB_READS]
        return sum(s.requests for s in found), sum(s.consistent for s in found)


def _ticks_windows(body: str) -> int | None:
    """Distinct (symbol, minute) windows of a queue message that carries ticks as [symbol, price, volume,
    ts_ns, ...] rows, else None."""
    try:
        message = json.loads(body)
        rows = message["ticks"]
        return len({(row[0], int(row[3]) // MINUTE_NS) for row in rows})
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def tally(path: Path, events_queue: str, ingest_queue: str) -> Tally:
    """Read a whole recording once, streaming it."""
    out = Tally()
    if not path.exists():
        return out
    damaged_keys: list[Key] = []
    for line, _ in _lines(path):
        entry = _parse_line(line)
        if entry is None:
            out.damaged += 1
            for head in _ENTRY_START.split(line):
                target = _HEAD_TARGET.search(head[:8192])
                if target:
                    out.damaged_targets[target.group(1)] += 1
                    damaged_keys.append(_damaged_key(head[:8192], target.group(1)))
            continue
        request = classify(entry, events_queue, ingest_queue)
        stats = out.stats((request.category, request.service, request.operation))
        stats.requests += 1
        if request.service == "dynamodb":
            body = body_json(entry) or {}
            if request.operation in DYNAMODB_WRITES:
                wu, checks = write_units(request.operation, body)
                stats.write_units += wu
                stats.condition_checks += checks
            elif request.operation in DYNAMODB_READS and consistent_read(request.operation, body):
                stats.consistent += 1
        elif (request.category == "work" and request.service == "sqs"
              and request.operation in ("SendMessage", "SendMessageBatch")):
            body = body_json(entry) or {}
            if str(body.get("QueueUrl", "")).endswith("/" + ingest_queue):
                bodies = ([body.get("MessageBody", "")] if request.operation == "SendMessage"
                          else [e.get("MessageBody", "") for e in body.get("Entries", [])])
                out.message_windows.extend(_ticks_windows(b) for b in bodies)
    for key, count in Counter(damaged_keys).items():
        # Counted, with the mean write units of the readable requests of the same kind.
        stats = out.stats(key)
        if stats.requests:
            stats.write_units += round(stats.write_units * count / stats.requests)
        elif key[1] == "dynamodb" and key[2] in DYNAMODB_WRITES:
            stats.write_units += count
        stats.requests += count
        stats.imputed += count
    return out


def _damaged_key(head: str, target: str) -> Key:
    """(category, service, operation) of an entry of which only the head can be read."""
    service = _TARGET_SERVICE.get(target.split("_")[0].split(".")[0], "?")
    operation = target.rsplit(".", 1)[-1]
    category = _origin(head) or ("poll" if operation == "ReceiveMessage" else "work")
    return category, service, operation


# ---------------------------------------------------------------------------------------------- watching it grow


class Watch:
    """Follows the recording as it grows, to tell when the pipeline has stopped writing.

    Only the head of each new line is looked at (a request's target and user agent come first), so watching
    costs little next to the stack it shares the machine with.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.mid_line = self.offset > 0 and self._byte_before(self.offset) != b"\n"
        self.last_write = time.monotonic()
        self.recent: Counter[str] = Counter()

    def _byte_before(self, offset: int) -> bytes:
        with self.path.open("rb") as f:
            f.seek(offset - 1)
            return f.read(1)

    def poll(self) -> None:
        if not self.path.exists():
            return
        for line, offset in _lines(self.path, self.offset):
            self.offset = offset
            if self.mid_line:  # the rest of an entry written before the watch began
                self.mid_line = False
                continue
            head = line[:8192]
            if _origin(head) is not None:
                continue
            target = _HEAD_TARGET.search(head)
            if target:
                operation = target.group(1).rsplit(".", 1)[-1]
                is_write = operation in WRITES
            else:
                method = _HEAD_METHOD.search(line[:16384])
                operation = f"s3 {method.group(1) if method else '?'}"
                is_write = method is not None and method.group(1) in ("PUT", "POST", "DELETE")
            if is_write:
                self.last_write = time.monotonic()
                self.recent[operation] += 1

    def quiet_for(self) -> float:
        return time.monotonic() - self.last_write
