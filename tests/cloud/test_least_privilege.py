"""Least privilege, shown by running the code: every handler runs on moto as its trigger would call it,
every AWS call it makes is recorded, and each call is checked against that function's role in the packaged
stack (action, resource ARN, condition). Conversely, every data action a role grants must have been used:
a grant nobody calls is a grant too many."""

from __future__ import annotations

import fnmatch
import gzip
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto import mock_aws

from infra import policies
from infra.definitions import load_stage

from .cfn import PSEUDO, as_list
from .conftest import Packaged

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_IDS = {"api_handler": "APIHandler", "DataIngestion": "DataIngestion", "DataProcessor": "DataProcessor",
                "DataAggregator": "DataAggregator"}
# Grants the Lambda service uses on the function's behalf, not the function's code: the SQS trigger's
# polling, the asynchronous dead-letter queue, the function's logs and its traces.
# Grants no call of the code shows: the platform's (the trigger's polling, Lambda's dead letters, logs,
# tracing), and s3:ListBucket, which only turns S3's 403 for a missing object into 404.
PLATFORM_SIDS = {"PollQueue", "DeadLetter", "Logs", "Tracing", policies.TELL_MISSING}
REGION, ACCOUNT = "us-east-1", "123456789012"  # moto's defaults, and PSEUDO's


# -- what a call needs ------------------------------------------------------------------------------------

TRANSACT_ACTIONS = {"ConditionCheck": "ConditionCheckItem", "Put": "PutItem", "Delete": "DeleteItem",
                    "Update": "UpdateItem"}


def authorised_calls(calls: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    """The calls as IAM authorises them: a TransactWriteItems is the actions inside it, each on its table."""
    out = []
    for service, operation, params in calls:
        if service == "dynamodb" and operation == "TransactWriteItems":
            for item in params["TransactItems"]:
                (kind, body), = item.items()
                out.append((service, TRANSACT_ACTIONS[kind], body))
        else:
            out.append((service, operation, params))
    return out


def iam_action(service: str, operation: str, params: dict[str, Any]) -> str:
    if service == "s3" and operation in ("HeadObject", "GetObject"):
        return "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
    if service == "s3" and operation == "ListObjectVersions":
        return "s3:ListBucketVersions"
    if service == "sqs" and operation == "SendMessageBatch":
        return "sqs:SendMessage"
    return f"{service}:{operation}"


def call_arns(service: str, params: dict[str, Any]) -> list[str]:
    if service == "dynamodb":
        tables = [params["TableName"]] if "TableName" in params else list(params["RequestItems"])
        return [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{t}" for t in tables]
    if service == "sqs":
        name = params.get("QueueName") or params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"]
    if service == "s3":
        key = params.get("Key")
        return [f"arn:aws:s3:::{params['Bucket']}" + (f"/{key}" if key is not None else "")]
    if service == "events":
        buses = {e.get("EventBusName") or "default" for e in params["Entries"]}
        return [f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{b}" for b in buses]
    raise AssertionError(f"no ARN rule for {service}")


def condition_values(service: str, params: dict[str, Any]) -> dict[str, set[str]]:
    if service == "events":
        return {"events:source": {e["Source"] for e in params["Entries"]},
                "events:detail-type": {e["DetailType"] for e in params["Entries"]}}
    return {}


# -- what the packaged roles allow ------------------------------------------------------------------------

def arn_of(template: dict[str, Any], logical_id: str) -> str:
    resource = template["Resources"][logical_id]
    p = resource["Properties"]
    return {
        "AWS::DynamoDB::Table": lambda: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{p['TableName']}",
        "AWS::S3::Bucket": lambda: f"arn:aws:s3:::{p['BucketName']}",
        "AWS::SQS::Queue": lambda: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{p['QueueName']}",
        "AWS::Logs::LogGroup": lambda: f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{p['LogGroupName']}:*",
    }[resource["Type"]]()


def resolve(template: dict[str, Any], expr: Any) -> str:
    if isinstance(expr, str):
        return expr
    if "Fn::GetAtt" in expr:
        logical_id, attribute = expr["Fn::GetAtt"]
        assert attribute == "Arn"
        return arn_of(template, logical_id)
    if "Fn::Sub" in expr:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            return str(PSEUDO[name]) if name in PSEUDO else arn_of(template, name.removesuffix(".Arn"))
        return re.sub(r"\$\{([^}]+)\}", sub, expr["Fn::Sub"])
    raise AssertionError(f"cannot resolve {expr}")


def role_statements(stack: Packaged, function_id: str) -> list[dict[str, Any]]:
    role = stack.resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [s for p in stack.resources[role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def allows(stack: Packaged, statement: dict[str, Any], action: str, arn: str, values: dict[str, set[str]]) -> bool:
    if statement["Effect"] != "Allow" or action not in as_list(statement["Action"]):
        return False
    if not any(fnmatch.fnmatchcase(arn, resolve(stack.template, r)) for r in as_list(statement["Resource"])):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        assert operator == "StringEquals"
        for key, allowed in keys.items():
            if not values.get(key) or not values[key] <= set(as_list(allowed)):
                return False
    return True


# -- the scenario -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recorded_calls() -> Iterator[dict[str, list[tuple[str, str, dict[str, Any]]]]]:
    """Run every handler once through each of its paths; calls recorded per function."""
    stage = load_stage("dev")
    patch = pytest.MonkeyPatch()
    patch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {**stage.environment, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        patch.setenv(key, value)
    calls: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    acting: list[str] = []
    containers: list[str] = []
    failing: set[str] = set()  # operations that fail, as AWS would when unavailable, until removed
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation in failing:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "unavailable"}}, operation)
        if acting:
            calls[acting[-1]].append((client.meta.service_model.service_name, operation, dict(params)))
        return original(client, operation, params)

    patch.setattr(BaseClient, "_make_api_call", recording)

    @contextmanager
    def as_function(name: str) -> Iterator[None]:
        # Each function runs in containers of its own: nothing one caches (clients, the queue URL) is
        # seen by another.
        if containers and containers[-1] != name:
            use_cases.cache_clear()
        containers.append(name)
        acting.append(name)
        try:
            yield
        finally:
            acting.pop()

    from chalice.app import CloudWatchEventConfig
    from chalice.test import Client

    import app as app_module
    from chalicelib.bootstrap import use_cases
    from chalicelib.schemas import ObjectCreatedDetail
    from chalicelib.settings import get_settings
    from localrun.provision import provision

    try:
        with mock_aws():
            use_cases.cache_clear()
            settings = get_settings()
            assert settings.table_name == stage.table_name
            patterns = {s.name: s.event_pattern for s in app_module.app.event_sources
                        if isinstance(s, CloudWatchEventConfig)}
            names = provision(settings, patterns, boto3.session.Session())
            sqs, s3 = boto3.client("sqs"), boto3.client("s3")

            def drain(url: str) -> list[str]:
                bodies = []
                while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                    bodies += [m["Body"] for m in messages]
                    sqs.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
                return bodies

            with Client(app_module.app, stage_name="dev", project_dir=str(ROOT)) as client:
                # REST: ingest (then replay the same Idempotency-Key), read bars, status, symbols.
                body = json.dumps([{"symbol": "AAPL", "price": 150.25, "volume": 100,
                                    "timestamp": "2024-07-01T14:30:05Z"}])
                with as_function("api_handler"):
                    headers = {"Content-Type": "application/json", "Idempotency-Key": "k-1"}
                    first = client.http.post("/ingest", headers=headers, body=body.encode())
                    again = client.http.post("/ingest", headers=headers, body=body.encode())
                assert first.status_code == again.status_code == 202
                ingestion_id = json.loads(first.body)["ingestion_id"]
                failing.add("SendMessageBatch")  # SQS unavailable: the request is answered 503 and withdrawn
                with as_function("api_handler"):
                    refused = client.http.post("/ingest", headers={"Content-Type": "application/json"},
                                               body=body.replace("AAPL", "AMZN").encode())
                failing.clear()
                assert refused.status_code == 503

                def upload(key: str, body: bytes) -> str:
                    return s3.put_object(Bucket=settings.bucket_name, Key=key, Body=body)["VersionId"]

                def object_created(key: str, version: str) -> dict[str, Any]:
                    detail = ObjectCreatedDetail.of(settings.bucket_name, key, version)
                    event = client.events.generate_cw_event("aws.s3", "Object Created", detail, [])
                    with as_function("DataIngestion"):
                        return client.lambda_.invoke("DataIngestion", event).payload

                def process_queue(extra: tuple[str, ...] = ()) -> None:
                    bodies = drain(names["queue_url"]) + list(extra)
                    assert bodies
                    for i in range(0, len(bodies), 10):
                        event = client.events.generate_sqs_event(bodies[i:i + 10], queue_name=settings.queue_name)
                        with as_function("DataProcessor"):
                            client.lambda_.invoke("DataProcessor", event)

                def aggregate() -> None:
                    # moto's S3 also puts "Object Created" on the bus: those were delivered by object_created.
                    events = [e for e in map(json.loads, drain(names["events_queue_url"]))
                              if e["detail-type"] == "TicksProcessed"]
                    assert events
                    for e in events:
                        payload = client.events.generate_cw_event(e["source"], e["detail-type"], e["detail"], [])
                        with as_function("DataAggregator"):
                            client.lambda_.invoke("DataAggregator", payload)
                    scheduled = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
                    with as_function("DataAggregator"):  # the schedule, folded into the same function
                        client.lambda_.invoke("DataAggregator", scheduled)

                # S3: a CSV (its event delivered twice, as EventBridge may) and a gzip file.
                rows = "timestamp,price,size,symbol\n" + "".join(
                    f"2024-07-01T14:3{i}:00Z,{100 + i},{i + 1},MSFT\n" for i in range(3))
                first_version = upload("incoming/t.csv", rows.encode())
                replaced = object_created("incoming/t.csv", first_version)["ingestion_id"]
                object_created("incoming/t.csv", first_version)
                object_created("incoming/t2.csv.gz", upload("incoming/t2.csv.gz", gzip.compress(rows.encode())))
                process_queue(extra=("{not a pipeline message",))  # set aside: sent to the dead-letter queue
                aggregate()
                # Written while versioning was suspended (as before it was first enabled): the object's version
                # id is "null", and the code reads it without a VersionId, which IAM checks as s3:GetObject.
                bucket, key = settings.bucket_name, "incoming/t3.csv"
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
                s3.put_object(Bucket=bucket, Key=key, Body=rows.replace("MSFT", "IBM").encode())
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
                (written,) = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
                assert written["VersionId"] == "null"
                object_created(key, written["VersionId"])
                process_queue()
                aggregate()
                # A new version of the same key replaces the first: its bars are revised.
                object_created("incoming/t.csv", upload("incoming/t.csv", rows.replace(",10", ",20").encode()))
                process_queue()
                aggregate()
                # Two versions queued before either is processed: the older one's chunks, once stored, are found
                # replaced, and their windows revisited.
                for version in (rows, rows.replace(",10", ",40")):
                    object_created("incoming/t6.csv", upload("incoming/t6.csv", version.replace("MSFT", "TSLA")
                                                               .encode()))
                process_queue()
                aggregate()
                # A new version with fewer rows empties a window: its bar is deleted.
                short = rows.replace("MSFT", "NFLX")
                object_created("incoming/t4.csv", upload("incoming/t4.csv", short.encode()))
                process_queue()
                aggregate()
                shorter = "".join(short.splitlines(True)[:2]).encode()
                object_created("incoming/t4.csv", upload("incoming/t4.csv", shorter))
                process_queue()
                aggregate()
                # A key deleted (a delete marker on top) before the events of its two versions arrive: the newest
                # version under the marker is still the one that counts, found by listing the key's versions.
                deleted = "incoming/t5.csv"
                older = upload(deleted, rows.replace("MSFT", "ORCL").encode())
                newer = upload(deleted, rows.replace("MSFT", "ORCL").replace(",10", ",30").encode())
                s3.delete_object(Bucket=bucket, Key=deleted)
                assert object_created(deleted, older)["status"] == "superseded"
                kept = object_created(deleted, newer)["ingestion_id"]
                process_queue()
                aggregate()

                with as_function("api_handler"):
                    bars = client.http.get("/bars?symbol=MSFT&interval=1m")
                    status = client.http.get(f"/ingestions/{ingestion_id}")
                    file_status = client.http.get(f"/ingestions/{replaced}")
                    symbols = client.http.get("/symbols")
                    unversioned_bars = client.http.get("/bars?symbol=IBM&interval=1m")
                    shortened = client.http.get("/bars?symbol=NFLX&interval=1m")
                    kept_status = client.http.get(f"/ingestions/{kept}")
                    under_marker = client.http.get("/bars?symbol=ORCL&interval=1m")
                    replaced_early = client.http.get("/bars?symbol=TSLA&interval=1m")
                    of_key = client.http.get("/ingestions?source=s3&key=incoming/t.csv")
                    recent = client.http.get("/ingestions?since=2024-07-01T00:00:00Z&limit=3")
                assert [b["revision"] for b in json.loads(bars.body)["bars"]] == [2, 2, 2]
                assert len(json.loads(unversioned_bars.body)["bars"]) == 3
                assert len(json.loads(shortened.body)["bars"]) == 1
                assert json.loads(status.body)["status"] == "processed"
                assert json.loads(file_status.body)["status"] == "superseded"
                assert json.loads(kept_status.body)["status"] == "processed"
                assert [i["status"] for i in json.loads(of_key.body)["ingestions"]] == ["processed", "superseded"]
                assert len(json.loads(recent.body)["ingestions"]) == 3 and json.loads(recent.body)["next"]
                assert [b["close"] for b in json.loads(under_marker.body)["bars"]] == ["300", "301", "302"]
                assert [b["close"] for b in json.loads(replaced_early.body)["bars"]] == ["400", "401", "402"]
                assert {s["symbol"] for s in json.loads(symbols.body)["symbols"]} == {"AAPL", "MSFT", "IBM", "NFLX",
                                                                                       "ORCL", "TSLA"}
                published = [e["detail-type"] for e in map(json.loads, drain(names["events_queue_url"]))]
                assert "BarsRevised" in published or any(
                    op == "PutEvents" and p["Entries"][0]["DetailType"] == "BarsRevised"
                    for _, op, p in calls["DataAggregator"])
            use_cases.cache_clear()
        yield dict(calls)
    finally:
        patch.undo()


@pytest.mark.parametrize("function", list(FUNCTION_IDS))
def test_every_call_is_allowed_by_the_functions_own_role(packaged_stacks: dict[str, Packaged],
                                                         recorded_calls: dict[str, list], function: str) -> None:
    stack = packaged_stacks["dev"]
    statements = role_statements(stack, FUNCTION_IDS[function])
    assert recorded_calls[function], f"the scenario made no call as {function}"
    denied = []
    for service, operation, params in authorised_calls(recorded_calls[function]):
        action = iam_action(service, operation, params)
        values = condition_values(service, params)
        for arn in call_arns(service, params):
            if not any(allows(stack, s, action, arn, values) for s in statements):
                denied.append((action, arn))
    assert not denied, f"{function} would be denied: {sorted(set(denied))}"


@pytest.mark.parametrize("function", list(FUNCTION_IDS))
def test_every_data_action_granted_is_used(packaged_stacks: dict[str, Packaged], recorded_calls: dict[str, list],
                                           function: str) -> None:
    stack = packaged_stacks["dev"]
    granted = {a for s in role_statements(stack, FUNCTION_IDS[function]) if s["Sid"] not in PLATFORM_SIDS
               for a in as_list(s["Action"])}
    used = {iam_action(service, op, params) for service, op, params in authorised_calls(recorded_calls[function])}
    assert granted == used, f"granted but unused: {granted - used}; used but not granted: {used - granted}"


def test_the_chalice_deploy_policies_grant_the_same_actions_as_the_packaged_roles(
        packaged_stacks: dict[str, Packaged]) -> None:
    stage = load_stage("dev")
    for function, function_id in FUNCTION_IDS.items():
        packaged = {a for s in role_statements(packaged_stacks["dev"], function_id) if s["Sid"] not in PLATFORM_SIDS
                    for a in as_list(s["Action"])}
        files = {a for s in policies.chalice_deploy_policy(stage, function)["Statement"]
                 if s["Sid"] not in PLATFORM_SIDS for a in as_list(s["Action"])}
        assert packaged == files, function
