"""The packaged stack (sam.json, as `chalice package --merge-template` writes it) holds everything the
cloud export promises, for every stage: a regression in Chalice or in the merge template fails here."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import zipfile

import pytest

from chalicelib.settings import PROCESSOR_BATCH_SIZE, PROCESSOR_BATCHING_WINDOW_SECONDS
from infra import definitions
from infra.definitions import AGGREGATOR, API_HANDLER, INGESTION, PROCESSOR, load_stage

from .cfn import PSEUDO, as_list, condition, deployed, of_type, references, statements, tags_of
from .conftest import Packaged

FUNCTION_IDS = {API_HANDLER: "APIHandler", INGESTION: "DataIngestion", PROCESSOR: "DataProcessor",
                AGGREGATOR: "DataAggregator"}


def props(stack: Packaged, logical_id: str) -> dict:
    return stack.resources[logical_id]["Properties"]


def single(resources: dict, **match: str) -> tuple[str, dict]:
    found = [(k, v) for k, v in resources.items() if all(v["Properties"].get(p) == x for p, x in match.items())]
    assert len(found) == 1, f"expected one resource with {match}, found {[k for k, _ in found]}"
    return found[0]


# -- bucket ----------------------------------------------------------------------------------------------

def test_bucket_is_versioned_encrypted_private_tls_only_with_lifecycle_and_eventbridge(stack: Packaged) -> None:
    stage = load_stage(stack.stage)
    buckets = of_type(stack.resources, "AWS::S3::Bucket")
    logical_id, bucket = single(buckets, BucketName=f"market-data-bucket-{stack.stage}")
    p = bucket["Properties"]
    assert p["BucketName"] == stage.bucket_name
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    assert p["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                   "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    (rule,) = p["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Transitions"] == [{"TransitionInDays": 30, "StorageClass": "STANDARD_IA"}]
    assert rule["ExpirationInDays"] > 30
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0
    # The ingestion trigger: S3 sends Object Created to EventBridge, and the rule matches this bucket.
    assert p["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    (event,) = props(stack, "DataIngestion")["Events"].values()
    assert event["Properties"]["Pattern"] == {"source": ["aws.s3"], "detail-type": ["Object Created"],
                                              "detail": {"bucket": {"name": [stage.bucket_name]}}}
    (policy,) = [v for v in of_type(stack.resources, "AWS::S3::BucketPolicy").values()
                 if v["Properties"]["Bucket"] == {"Ref": logical_id}]
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [{"Fn::GetAtt": [logical_id, "Arn"]}, {"Fn::Sub": f"${{{logical_id}.Arn}}/*"}]


# -- table -----------------------------------------------------------------------------------------------

def test_table_is_on_demand_with_pitr_ttl_and_deletion_protection_in_prod(stack: Packaged) -> None:
    _, table = single(of_type(stack.resources, "AWS::DynamoDB::Table"), TableName=f"MarketDataState-{stack.stage}")
    p = table["Properties"]
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert {k["AttributeName"]: k["KeyType"] for k in p["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    prod = stack.stage == "prod"
    assert p["DeletionProtectionEnabled"] is prod
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == ("Retain" if prod else "Delete")


def test_the_ttl_attribute_is_the_one_the_store_writes() -> None:
    from chalicelib.adapters.dynamodb import records

    assert records.TTL_ATTRIBUTE is definitions.TTL_ATTRIBUTE


# -- queues and the processor's trigger ------------------------------------------------------------------

def test_queue_has_an_encrypted_dead_letter_queue_and_a_long_enough_visibility_timeout(stack: Packaged) -> None:
    stage = load_stage(stack.stage)
    queues = of_type(stack.resources, "AWS::SQS::Queue")
    queue_id, queue = single(queues, QueueName=stage.queue_name)
    dlq_id, dlq = single(queues, QueueName=stage.dead_letter_queue_name)
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5}
    processor_timeout = props(stack, "DataProcessor")["Timeout"]
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * processor_timeout
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["Properties"]["MessageRetentionPeriod"] > queue["Properties"]["MessageRetentionPeriod"]
    for q in queues.values():
        assert q["Properties"]["SqsManagedSseEnabled"] is True

    processor = props(stack, "DataProcessor")
    (trigger,) = processor["Events"].values()
    assert trigger["Type"] == "SQS"
    assert trigger["Properties"]["Queue"] == {"Fn::Sub": f"${{{queue_id}.Arn}}"}
    assert trigger["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The handler returns item failures only when told the trigger reads them.
    assert processor["Environment"]["Variables"]["REPORT_BATCH_ITEM_FAILURES"] == "true"


def test_a_backlog_starts_no_more_processors_than_the_stage_allows(stack: Packaged) -> None:
    stage = load_stage(stack.stage)
    (trigger,) = props(stack, "DataProcessor")["Events"].values()
    assert trigger["Properties"]["ScalingConfig"] == {"MaximumConcurrency": stage.processor_maximum_concurrency}
    assert 2 <= stage.processor_maximum_concurrency <= 1000  # what AWS accepts


def test_the_processor_is_given_batches_gathered_for_a_second(stack: Packaged) -> None:
    (trigger,) = props(stack, "DataProcessor")["Events"].values()
    assert trigger["Properties"]["BatchSize"] == PROCESSOR_BATCH_SIZE
    assert trigger["Properties"]["MaximumBatchingWindowInSeconds"] == PROCESSOR_BATCHING_WINDOW_SECONDS
    # What AWS accepts on a standard queue: more than 10 messages only with a window.
    assert 10 < PROCESSOR_BATCH_SIZE <= 10_000 and 1 <= PROCESSOR_BATCHING_WINDOW_SECONDS <= 300


def test_production_may_run_more_processors_than_dev() -> None:
    dev, prod = (load_stage(s).processor_maximum_concurrency for s in ("dev", "prod"))
    assert dev < prod


@pytest.mark.parametrize("value", [None, 1, 1001, "5"])
def test_each_stage_must_bound_the_processor_with_a_value_aws_accepts(value: object) -> None:
    config = definitions.read_config()
    processor = config["stages"]["dev"]["lambda_functions"]["DataProcessor"]
    processor.pop("sqs_maximum_concurrency")
    if value is not None:
        processor["sqs_maximum_concurrency"] = value
    with pytest.raises(ValueError, match="sqs_maximum_concurrency"):
        load_stage("dev", config)


def test_a_message_waiting_too_long_in_the_ingest_queue_raises_an_alarm(stack: Packaged) -> None:
    stage = load_stage(stack.stage)
    for template in (stack.template, json.loads(stack.resources_path.read_text())):  # both deploy paths
        resources = deployed(template)
        queue_id, _ = single(of_type(resources, "AWS::SQS::Queue"), QueueName=stage.queue_name)
        (topic,) = of_type(resources, "AWS::SNS::Topic")
        (alarm,) = [a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
                    if a["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"]
        assert alarm["Namespace"] == "AWS/SQS" and alarm["Statistic"] == "Maximum"
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
        assert alarm["Threshold"] == stage.queue_age_alarm_seconds
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic}]
    assert stage.queue_age_alarm_seconds == 15 * 60  # config.json, both stages


# -- EventBridge rules -----------------------------------------------------------------------------------

def test_aggregator_runs_on_the_5_minute_schedule_and_on_the_processors_events(stack: Packaged) -> None:
    stage = load_stage(stack.stage)
    events = props(stack, "DataAggregator")["Events"]
    by_type = {e["Type"]: e["Properties"] for e in events.values()}
    assert by_type["Schedule"] == {"Schedule": "rate(5 minutes)"}
    assert by_type["CloudWatchEvent"]["Pattern"] == {"source": [stage.event_source], "detail-type": [
        "TicksProcessed", "AggregationPending"]}
    # One function: the separate function Chalice made for @app.schedule is not deployed; several runs of it
    # at once (they coordinate per symbol through leases) for different symbols.
    resources = deployed(stack.template)
    assert "DataAggregatorSchedule" not in resources and "DataAggregatorScheduleRole" not in resources
    assert props(stack, "DataAggregator")["ReservedConcurrentExecutions"] == 10


def test_the_schedule_expression_is_the_one_app_py_declares(stack: Packaged) -> None:
    chalice_schedule = props(stack, "DataAggregatorSchedule")["Events"]
    (declared,) = chalice_schedule.values()
    (folded,) = [e for e in props(stack, "DataAggregator")["Events"].values() if e["Type"] == "Schedule"]
    assert folded["Properties"]["Schedule"] == declared["Properties"]["Schedule"]


# -- functions -------------------------------------------------------------------------------------------

def test_functions_are_named_after_the_stage_and_traced(stack: Packaged) -> None:
    s = stack.stage
    functions = of_type(deployed(stack.template), "AWS::Serverless::Function")
    assert {v["Properties"]["FunctionName"] for v in functions.values()} == {
        f"DataIngestion-{s}", f"DataProcessor-{s}", f"DataAggregator-{s}", f"DataApi-{s}"}
    for function in functions.values():
        assert function["Properties"]["Tracing"] == "Active"


def test_s3_events_the_ingestion_fails_to_handle_are_kept_in_a_dead_letter_queue(stack: Packaged) -> None:
    stage = load_stage(stack.stage)
    dlq_id, _ = single(of_type(stack.resources, "AWS::SQS::Queue"), QueueName=stage.events_dead_letter_queue_name)
    ingestion = props(stack, "DataIngestion")
    assert ingestion["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
    assert ingestion["EventInvokeConfig"]["MaximumRetryAttempts"] == 2
    # The aggregator's events are hints (the schedule covers them): they expire instead of alarming.
    aggregator = props(stack, "DataAggregator")
    assert "DeadLetterQueue" not in aggregator
    assert aggregator["EventInvokeConfig"]["MaximumEventAgeInSeconds"] <= 900


# -- logs, metrics, alarms -------------------------------------------------------------------------------

def test_every_function_has_its_own_log_group_kept_7_days(stack: Packaged) -> None:
    resources = deployed(stack.template)
    groups = of_type(resources, "AWS::Logs::LogGroup")
    for function in of_type(resources, "AWS::Serverless::Function").values():
        name = function["Properties"]["FunctionName"]
        (group_id,) = [k for k, v in groups.items() if v["Properties"]["LogGroupName"] == f"/aws/lambda/{name}"]
        assert groups[group_id]["Properties"]["RetentionInDays"] == 7
        assert group_id in function["DependsOn"]  # created, with retention, before the function can log
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 7


def test_every_reference_points_at_something_that_exists(stack: Packaged) -> None:
    # Chalice 1.34 names the API handler's log group after "${ApiHandler}", which does not exist.
    known = set(stack.resources) | set(stack.template.get("Parameters", {})) | set(PSEUDO)
    missing = {ref for ref in references(stack.template["Resources"]) if ref not in known}
    missing |= {ref for ref in references(stack.template["Outputs"]) if ref not in known}
    assert not missing


def test_errors_are_counted_from_the_logs_and_alarmed_with_the_dead_letter_queues(stack: Packaged) -> None:
    resources = deployed(stack.template)
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    filters = of_type(resources, "AWS::Logs::MetricFilter")
    topic = {"Ref": next(iter(of_type(resources, "AWS::SNS::Topic")))}
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [topic]
    for logical_id in FUNCTION_IDS.values():
        group = {"Ref": f"{logical_id.replace('APIHandler', 'ApiHandler')}LogGroup"}
        (metric_filter,) = [f for f in filters.values() if f["Properties"]["LogGroupName"] == group]
        assert "ERROR" in metric_filter["Properties"]["FilterPattern"]
        (transformation,) = metric_filter["Properties"]["MetricTransformations"]
        assert [a for a in alarms.values() if a["Properties"].get("MetricName") == transformation["MetricName"]
                and a["Properties"]["Namespace"] == transformation["MetricNamespace"]]
        assert [a for a in alarms.values() if a["Properties"].get("MetricName") == "Errors"
                and a["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]]
    stage = load_stage(stack.stage)
    for name in (stage.dead_letter_queue_name, stage.events_dead_letter_queue_name):
        dlq_id, _ = single(of_type(resources, "AWS::SQS::Queue"), QueueName=name)
        (alarm,) = [a for a in alarms.values() if a["Properties"].get("Dimensions") == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]]
        assert alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["Properties"]["Threshold"] == 1


# -- REST API --------------------------------------------------------------------------------------------

def test_every_route_requires_sigv4_and_the_stage_is_throttled_traced_and_logged(stack: Packaged) -> None:
    api = props(stack, "RestAPI")
    swagger = api["DefinitionBody"]
    assert swagger["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    routes = [(path, method, spec) for path, methods in swagger["paths"].items() for method, spec in methods.items()]
    assert {(p, m) for p, m, _ in routes} >= {("/ingest", "post"), ("/bars", "get"), ("/symbols", "get"),
                                              ("/ingestions/{ingestion_id}", "get")}
    for path, method, spec in routes:
        assert spec.get("security") == [{"sigv4": []}], f"{method.upper()} {path} is not IAM-authenticated"
    (settings,) = api["MethodSettings"]
    assert settings["ResourcePath"] == "/*" and settings["HttpMethod"] == "*"
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] >= settings["ThrottlingRateLimit"]
    assert not of_type(stack.resources, "AWS::ApiGateway::UsagePlan")
    assert not any(v["Type"] == "AWS::Serverless::Api" and v["Properties"].get("Auth", {}).get("UsagePlan")
                   for v in stack.resources.values())
    assert api["TracingEnabled"] is True
    destination = api["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    assert stack.resources[destination]["Properties"]["RetentionInDays"] == 7
    assert "$context.requestId" in api["AccessLogSetting"]["Format"]
    json.loads(api["AccessLogSetting"]["Format"])


# -- IAM -------------------------------------------------------------------------------------------------

def test_one_role_per_function_and_no_wildcard_actions_or_resources(stack: Packaged) -> None:
    resources = deployed(stack.template)
    functions = of_type(resources, "AWS::Serverless::Function")
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(functions)
    assert set(roles) == set(of_type(resources, "AWS::IAM::Role"))
    for logical_id, statement in statements({"Resources": resources}):
        actions = as_list(statement["Action"])
        if statement["Effect"] == "Deny":
            continue  # the bucket's TLS-only Deny must cover every action (s3:*)
        assert not any(a == "*" or a.endswith(":*") for a in actions), (logical_id, actions)
        if "*" in as_list(statement["Resource"]):
            # Only where AWS has no resource-level permission.
            assert all(a.startswith("xray:") for a in actions), (logical_id, actions)
    for role in of_type(resources, "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


def _role_statements(stack: Packaged, function_id: str) -> list[dict]:
    role = props(stack, function_id)["Role"]["Fn::GetAtt"][0]
    return [s for doc in props(stack, role)["Policies"] for s in doc["PolicyDocument"]["Statement"]]


def test_functions_that_use_a_dead_letter_queue_may_write_to_it(stack: Packaged) -> None:
    functions = of_type(deployed(stack.template), "AWS::Serverless::Function")
    with_dlq = [k for k, v in functions.items() if "DeadLetterQueue" in v["Properties"]]
    assert with_dlq == ["DataIngestion"]
    for function_id in with_dlq:
        target = props(stack, function_id)["DeadLetterQueue"]["TargetArn"]
        assert any("sqs:SendMessage" in s["Action"] and s["Resource"] == target
                   for s in _role_statements(stack, function_id)), function_id


def test_each_function_logs_only_to_its_own_log_group(stack: Packaged) -> None:
    for function_id in FUNCTION_IDS.values():
        (logs,) = [s for s in _role_statements(stack, function_id) if s["Sid"] == "Logs"]
        group = logs["Resource"]["Fn::GetAtt"][0]
        assert props(stack, group)["LogGroupName"] == f"/aws/lambda/{props(stack, function_id)['FunctionName']}"
        assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]


# -- tags, outputs ---------------------------------------------------------------------------------------

TAGGABLE = {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::IAM::Role",
            "AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm", "AWS::Serverless::Function", "AWS::Serverless::Api"}


def test_every_resource_that_takes_tags_carries_the_stage_tags(stack: Packaged) -> None:
    expected = load_stage(stack.stage).tags
    assert expected["Project"] == "market-data" and expected["Environment"] == stack.stage
    resources = deployed(stack.template)
    assert {v["Type"] for v in resources.values()} - TAGGABLE <= {
        "AWS::S3::BucketPolicy", "AWS::Lambda::Permission", "AWS::Logs::MetricFilter", "AWS::SNS::Subscription"}
    for logical_id, resource in resources.items():
        if resource["Type"] in TAGGABLE:
            assert tags_of(resource).items() >= expected.items(), logical_id


def test_outputs(stack: Packaged) -> None:
    outputs = stack.template["Outputs"]
    assert outputs["apiUrl"]["Value"]["Fn::Sub"].startswith("https://${RestAPI}.execute-api.")
    assert outputs["bucketName"]["Value"] == {"Ref": "IngestBucket"}
    assert outputs["tableArn"]["Value"] == {"Fn::GetAtt": ["StateTable", "Arn"]}
    assert {"ingestQueueUrl", "deadLetterQueueUrl", "eventsDeadLetterQueueUrl", "alarmTopicArn",
            "dataIngestionFunctionName", "dataProcessorFunctionName", "dataAggregatorFunctionName",
            "aPIHandlerFunctionName"} <= set(outputs)


# -- one source of truth ---------------------------------------------------------------------------------

def test_names_come_from_config_json_only(stack: Packaged) -> None:
    stage = load_stage(stack.stage)
    env = stage.environment
    text = json.dumps(stack.template)
    for key in ("TABLE_NAME", "BUCKET_NAME", "QUEUE_NAME", "DLQ_NAME"):
        assert env[key] in text
    # The names live in config.json alone: no module that renders the stack or the local one spells them.
    from pathlib import Path

    root = Path(definitions.__file__).resolve().parents[1]
    for path in [*sorted((root / "infra").glob("*.py")), root / "localrun" / "provision.py"]:
        source = path.read_text()
        for value in (env["TABLE_NAME"], env["BUCKET_NAME"], env["QUEUE_NAME"], env["DLQ_NAME"]):
            assert value not in source, f"{path.name} spells {value}"
        assert not re.search(r"MarketDataState-|market-data-bucket-|market-data-ingest-", source), path.name


def test_the_condition_that_folds_the_schedule_function_is_false_for_every_parameter_value(stack: Packaged) -> None:
    (name,) = {v["Condition"] for v in stack.resources.values() if v.get("Condition") not in (None, "HasAlarmEmail")}
    assert "Ref" not in json.dumps(stack.template["Conditions"][name])  # depends on no parameter
    assert condition(stack.template, name) is False


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_chalice_deploy_policy_files_are_current(stage_name: str) -> None:
    from infra.build import policy_files

    stale = [p for p, content in policy_files().items() if not p.exists() or p.read_text() != content]
    assert not stale, "run `make policies`"
    config = definitions.read_config()
    for function in definitions.CHALICE_FUNCTIONS:
        file = config["stages"][stage_name]["lambda_functions"][function]["iam_policy_file"]
        assert file == f"policies/{stage_name}/{function}.json"


def test_the_package_carries_current_bytecode_of_every_module(stack: Packaged) -> None:
    """Lambda's code directory is read-only: without bytecode in the zip, every cold start compiles the app.
    (Chalice zips app.py alone, without its __pycache__: its few decorators are compiled at a cold start.)"""
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(stack.directory / "deployment.zip") as archive:
        names = set(archive.namelist())
        sources = [n for n in names if n.endswith(".py") and n.startswith("chalicelib/")]
        assert "chalicelib/bootstrap.py" in sources and len(sources) > 40
        for source in sources:
            folder, _, file = source.rpartition("/")
            compiled = f"{folder + '/' if folder else ''}__pycache__/{file[:-3]}.{tag}.pyc"
            assert compiled in names, f"{source} has no bytecode in the package"
            header = archive.read(compiled)[:16]
            assert int.from_bytes(header[4:8], "little") == 0b11, f"{compiled}: not checked-hash bytecode"
            assert header[8:16] == importlib.util.source_hash(archive.read(source)), f"{compiled} is stale"
