"""The merge template for `chalice package --merge-template`: everything the stack needs that Chalice
cannot express, rendered for one stage from infra/definitions.py (names and tags from config.json).

Chalice deep-merges this into its SAM template: dictionaries merge key by key, anything else (lists,
strings) replaces what Chalice wrote. So this file adds resources (bucket, table, queues, alarms...),
adds properties to Chalice's functions, roles, log groups and API, and replaces whole lists where
Chalice's are wrong (each role's Policies). It cannot delete anything, which is why the separate schedule
function Chalice generates is switched off with a condition instead (see _fold_schedule_function).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalice.utils import to_cfn_resource_name

from . import definitions, policies
from .definitions import (
    AGGREGATOR,
    AGGREGATOR_SCHEDULE,
    API_HANDLER,
    FOLDED_FUNCTIONS,
    INGESTION,
    PROCESSOR,
    TTL_ATTRIBUTE,
    Stage,
    lifecycle_rules_cfn,
    queue_properties_cfn,
    table_key_api,
)

# Logical IDs of the resources this template adds.
BUCKET = "IngestBucket"
BUCKET_POLICY = "IngestBucketPolicy"
TABLE = "StateTable"
QUEUE = "IngestQueue"
DEAD_LETTER_QUEUE = "IngestDeadLetterQueue"
EVENTS_DEAD_LETTER_QUEUE = "EventsDeadLetterQueue"
ALARM_TOPIC = "AlarmTopic"
QUEUE_AGE_ALARM = "IngestQueueAgeAlarm"
ALARM_SUBSCRIPTION = "AlarmEmailSubscription"
API_ACCESS_LOGS = "ApiAccessLogGroup"
CHALICE_API_LOGS = "ChaliceApiHandlerLogGroup"  # resources stack only, see resources_template
REST_API = "RestAPI"  # Chalice's
SCHEDULE_FUNCTION_OFF = "ScheduleFunctionDeployed"
HAS_ALARM_EMAIL = "HasAlarmEmail"

DEPLOYED_FUNCTIONS = (API_HANDLER, INGESTION, PROCESSOR, AGGREGATOR)

# API stage throttling (steady requests per second, burst); a usage plan would not meter IAM callers.
THROTTLING = {"prod": (100, 200)}
DEFAULT_THROTTLING = (20, 40)
ERROR_LOG_PATTERN = '{ $.level = "ERROR" || $.level = "CRITICAL" }'  # Powertools' JSON log lines
ALARM_PERIOD_SECONDS = 300
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId", "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime", "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller", "userArn": "$context.identity.userArn",
    "httpMethod": "$context.httpMethod", "resourcePath": "$context.resourcePath", "status": "$context.status",
    "protocol": "$context.protocol", "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency", "integrationError": "$context.integrationErrorMessage",
    "xrayTraceId": "$context.xrayTraceId",
}


# What API Gateway answers itself (bad signature, throttling, no such route, an integration failure), in the
# app's error shape; the codes are those the local SigV4 proxy answers. With IAM auth, a request to no route
# and an unsigned request are one response type.
_GATEWAY_ERROR = ('{"error":"%s","message":$context.error.messageString,"request_id":"$context.requestId"}')
_NO_TOKEN = ('{"error":"MissingAuthenticationToken","message":"Missing Authentication Token: the request is not '
             'signed (SigV4), or no route matches $context.httpMethod $context.resourcePath",'
             '"request_id":"$context.requestId"}')
_GATEWAY_CODES = {
    "DEFAULT_4XX": "$context.error.responseType", "DEFAULT_5XX": "$context.error.responseType",
    "INVALID_SIGNATURE": "InvalidSignature", "EXPIRED_TOKEN": "ExpiredToken", "ACCESS_DENIED": "AccessDenied",
    "UNAUTHORIZED": "Unauthorized", "THROTTLED": "Throttled", "QUOTA_EXCEEDED": "QuotaExceeded",
    "REQUEST_TOO_LARGE": "PayloadTooLarge", "INTEGRATION_TIMEOUT": "IntegrationTimeout",
    "INTEGRATION_FAILURE": "IntegrationFailure",
}
GATEWAY_RESPONSES = {
    **{kind: {"ResponseTemplates": {"application/json": _GATEWAY_ERROR % code}}
       for kind, code in _GATEWAY_CODES.items()},
    "MISSING_AUTHENTICATION_TOKEN": {"StatusCode": 403, "ResponseTemplates": {"application/json": _NO_TOKEN}},
}


@dataclass(frozen=True)
class AppEvents:
    """What app.py declares that the template needs: the schedule of the aggregator."""

    schedule_expression: str


def function_id(chalice_name: str) -> str:
    """Logical ID of a Chalice function in the SAM template (Chalice renames the API handler)."""
    return "APIHandler" if chalice_name == API_HANDLER else to_cfn_resource_name(chalice_name)


def role_id(chalice_name: str) -> str:
    return to_cfn_resource_name(f"{chalice_name}_role")


def log_group_id(chalice_name: str) -> str:
    return to_cfn_resource_name(f"{chalice_name}-log-group")


def _retention(stage: Stage, deletion_policy: bool = True) -> dict[str, str]:
    policy = "Retain" if stage.protected else "Delete"
    return {"DeletionPolicy": policy, "UpdateReplacePolicy": policy} if deletion_policy else {}


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _queue_arn(name: str) -> dict[str, Any]:
    return {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:" + name}


def _alarm(stage: Stage, name: str, description: str, metric: dict[str, Any], threshold: int = 1) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": f"{stage.app_name}-{stage.name}-{name}",
            "AlarmDescription": description,
            **metric,
            "Period": ALARM_PERIOD_SECONDS, "EvaluationPeriods": 1, "Threshold": threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": ALARM_TOPIC}], "OKActions": [{"Ref": ALARM_TOPIC}],
            "Tags": stage.tag_list(),
        },
    }


_SSE_SQS = {"checkov": {"skip": [
    {"id": "CKV_AWS_27", "comment": "Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled); the "
     "check only recognises KmsMasterKeyId. A KMS key would need kms:GenerateDataKey/Decrypt grants for every "
     "sender and the trigger, for no added control."},
]}}


# -- resources Chalice does not create ---------------------------------------------------------------

def storage(stage: Stage) -> dict[str, Any]:
    """Bucket (with its policy), table and queues: also the `chalice deploy` resources stack."""
    attribute_definitions, key_schema = table_key_api()
    bucket_arn = _arn(BUCKET)
    resources: dict[str, Any] = {
        BUCKET: {
            "Type": "AWS::S3::Bucket",
            **_retention(stage),
            "Properties": {
                "BucketName": stage.bucket_name,
                "VersioningConfiguration": {"Status": definitions.BUCKET_VERSIONING},
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": definitions.BUCKET_ENCRYPTION}}]},
                "LifecycleConfiguration": {"Rules": lifecycle_rules_cfn()},
                "PublicAccessBlockConfiguration": dict(definitions.PUBLIC_ACCESS_BLOCK),
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                # S3 -> EventBridge "Object Created" events, which the DataIngestion rule matches.
                "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
                "Tags": stage.tag_list(),
            },
            "Metadata": {"checkov": {"skip": [
                {"id": "CKV_AWS_18", "comment": "No server access logs: every object is ingested and "
                 "recorded (ingestion metadata with key, version and ETag) in the state table; access "
                 "logging would need a second bucket that nothing here reads."},
            ]}},
        },
        BUCKET_POLICY: {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": BUCKET},
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                    # A Deny must cover every action to enforce TLS; no Allow anywhere uses a wildcard.
                    "Action": "s3:*",
                    "Resource": [bucket_arn, {"Fn::Sub": f"${{{BUCKET}.Arn}}/*"}],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }]},
            },
        },
        TABLE: {
            "Type": "AWS::DynamoDB::Table",
            **_retention(stage),
            "Properties": {
                "TableName": stage.table_name,
                "BillingMode": definitions.BILLING_MODE,
                "AttributeDefinitions": attribute_definitions,
                "KeySchema": key_schema,
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": definitions.POINT_IN_TIME_RECOVERY},
                # Idempotency records (K#<key>) expire; everything else is kept.
                "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
                "DeletionProtectionEnabled": stage.protected,
                "Tags": stage.tag_list(),
            },
            "Metadata": {"checkov": {"skip": [
                {"id": "CKV_AWS_119", "comment": "Encrypted at rest with the AWS owned key (DynamoDB's "
                 "default); a customer managed key would add key administration and KMS calls on every "
                 "request without a requirement asking for it."},
            ]}},
        },
        DEAD_LETTER_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Metadata": _SSE_SQS,
            "Properties": {
                **queue_properties_cfn(stage, stage.dead_letter_queue_name, None),
                # Only the processing queue may dead-letter into it (an ARN, not a Ref: no cycle).
                "RedriveAllowPolicy": {"redrivePermission": "byQueue",
                                       "sourceQueueArns": [_queue_arn(stage.queue_name)]},
            },
        },
        QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Metadata": _SSE_SQS,
            "Properties": queue_properties_cfn(stage, stage.queue_name, _arn(DEAD_LETTER_QUEUE)),
        },
        EVENTS_DEAD_LETTER_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Metadata": _SSE_SQS,
            "Properties": {
                **queue_properties_cfn(stage, stage.events_dead_letter_queue_name, None),
                # Lambda writes failed events here; no queue may use it as its dead-letter queue.
                "RedriveAllowPolicy": {"redrivePermission": "denyAll"},
            },
        },
    }
    return resources


def monitoring(stage: Stage) -> dict[str, Any]:
    """The alarm topic, the dead-letter alarms and the backlog alarm (function alarms are in
    function_overrides)."""
    resources: dict[str, Any] = {
        ALARM_TOPIC: {
            "Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": stage.alarm_topic_name, "Tags": stage.tag_list()},
            "Metadata": {"checkov": {"skip": [
                {"id": "CKV_AWS_26", "comment": "Alarm notifications carry no data, and CloudWatch "
                 "cannot publish to a topic encrypted with the AWS managed key (alias/aws/sns)."},
            ]}},
        },
        ALARM_SUBSCRIPTION: {
            "Type": "AWS::SNS::Subscription",
            "Condition": HAS_ALARM_EMAIL,
            "Properties": {"TopicArn": {"Ref": ALARM_TOPIC}, "Protocol": "email",
                           "Endpoint": {"Ref": "AlarmEmail"}},
        },
    }
    for logical_id, what in ((DEAD_LETTER_QUEUE, "ticks that failed processing 5 times"),
                             (EVENTS_DEAD_LETTER_QUEUE, "S3 events DataIngestion failed to handle")):
        resources[f"{logical_id}Alarm"] = _alarm(
            stage, f"{logical_id}-not-empty", f"The dead-letter queue holds {what}.",
            {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible", "Statistic": "Maximum",
             "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [logical_id, "QueueName"]}}]},
        )
    # The trigger's maximum concurrency caps how fast a backlog drains: say so when ticks wait too long.
    minutes = stage.queue_age_alarm_seconds / 60
    resources[QUEUE_AGE_ALARM] = _alarm(
        stage, f"{QUEUE}-oldest-message",
        f"A message in the ingest queue has waited {minutes:g} minutes or more: processing is behind "
        f"(at most {stage.processor_maximum_concurrency} processors run at once) or failing.",
        {"Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage", "Statistic": "Maximum",
         "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [QUEUE, "QueueName"]}}]},
        threshold=stage.queue_age_alarm_seconds,
    )
    return resources


# -- Chalice's resources, completed -----------------------------------------------------------------

def _function_properties(stage: Stage, function: str, events: AppEvents) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "FunctionName": stage.function_name(function),
        "PropagateTags": True,
    }
    if function in policies.DEAD_LETTER_FUNCTIONS:
        properties["DeadLetterQueue"] = {"Type": "SQS", "TargetArn": _arn(EVENTS_DEAD_LETTER_QUEUE)}
        properties["EventInvokeConfig"] = {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 21600}
    if function == AGGREGATOR:
        # The schedule becomes a second trigger of the one aggregator (see _fold_schedule_function).
        properties["Events"] = {"DataAggregatorScheduleEvent": {
            "Type": "Schedule", "Properties": {"Schedule": events.schedule_expression}}}
        # Its events are hints: one that waited 15 minutes behind busy instances is dropped, and the
        # schedule aggregates whatever it would have. No dead-letter queue: it would fill with such
        # expired hints and alarm on ordinary backlog; failures raise the Errors alarm instead.
        properties["EventInvokeConfig"] = {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 900}
    if function == PROCESSOR:
        # Chalice names the queue by a constructed ARN; referring to the queue's Arn attribute instead
        # also makes CloudFormation create the mapping after the queue.
        properties["Events"] = {"DataProcessorSqsEventSource": {"Properties": {
            "Queue": {"Fn::Sub": f"${{{QUEUE}.Arn}}"},  # replaces the value of Chalice's Fn::Sub
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            # A backlog starts at most this many processors: it cannot take the account's concurrency, nor
            # the table's capacity, from everything else.
            "ScalingConfig": {"MaximumConcurrency": stage.processor_maximum_concurrency},
        }}}
        # The handler reports item failures only when told the trigger reads them (handlers.on_sqs_batch).
        properties["Environment"] = {"Variables": {"REPORT_BATCH_ITEM_FAILURES": "true"}}
    return properties


def _checkov_skips(function: str) -> list[dict[str, str]]:
    skips = [
        {"id": "CKV_AWS_117", "comment": "Not in a VPC: the function only calls AWS APIs over TLS with IAM; "
         "a VPC would need NAT or endpoints and protects nothing here."},
        {"id": "CKV_AWS_173", "comment": "The environment holds resource names and flags, no secrets; Lambda "
         "encrypts it at rest with its service key."},
    ]
    if function != AGGREGATOR:
        skips.append({"id": "CKV_AWS_115", "comment": "Concurrency is bounded by its trigger (API stage "
                      "throttling, SQS batches, S3 uploads); reserving it would take capacity from the account."})
    if function in (API_HANDLER, PROCESSOR):
        skips.append({"id": "CKV_AWS_116", "comment": "Invoked synchronously (API Gateway) or by an SQS "
                      "event source mapping, whose failures go to the queue's own dead-letter queue; a "
                      "function DLQ only applies to asynchronous invocations."})
    if function == AGGREGATOR:
        skips.append({"id": "CKV_AWS_116", "comment": "Its TicksProcessed and AggregationPending events are "
                      "hints: the 5-minute schedule aggregates every dirty window, so a failed or expired "
                      "event loses nothing, and failures raise the Errors alarm. A DLQ would fill with "
                      "events that expired behind busy instances (its reserved concurrency) and alarm on "
                      "ordinary backlog."})
    return skips


def function_overrides(stage: Stage, events: AppEvents) -> dict[str, Any]:
    """Names, triggers, dead letters, roles, log groups, error metrics and alarms of each function."""
    resources: dict[str, Any] = {}
    refs = {policies.TABLE: TABLE, policies.BUCKET: BUCKET, policies.QUEUE: QUEUE,
            policies.EVENTS_DLQ: EVENTS_DEAD_LETTER_QUEUE, policies.INGEST_DLQ: DEAD_LETTER_QUEUE}
    for function in DEPLOYED_FUNCTIONS:
        fid, rid, lid = function_id(function), role_id(function), log_group_id(function)
        name = stage.function_name(function)
        resources[fid] = {
            # The log group exists (with its retention) before the function can write to it.
            "DependsOn": [lid],
            "Properties": _function_properties(stage, function, events),
            "Metadata": {"checkov": {"skip": _checkov_skips(function)}},
        }
        resources[rid] = {"Properties": {
            "Policies": [{"PolicyName": f"{rid}Policy",
                          "PolicyDocument": policies.packaged_policy(stage, function,
                                                                     {**refs, policies.LOG_GROUP: lid})}],
            "Tags": stage.tag_list(),
        }}
        # Chalice names the group after the function's logical ID (and for the API handler after one
        # that does not exist: aws/chalice#2079); name it after the function's real name instead.
        resources[lid] = {
            "Properties": {"LogGroupName": f"/aws/lambda/{name}", "RetentionInDays": stage.log_retention_days,
                           "Tags": stage.tag_list()},
            "Metadata": {"checkov": {"skip": _log_group_skips()}},
        }
        resources[f"{fid}LoggedErrors"] = {
            "Type": "AWS::Logs::MetricFilter",
            "Properties": {
                "LogGroupName": {"Ref": lid},
                "FilterPattern": ERROR_LOG_PATTERN,
                "MetricTransformations": [{"MetricNamespace": f"{stage.app_name}/{stage.name}",
                                           "MetricName": f"{name}-logged-errors", "MetricValue": "1"}],
            },
        }
        resources[f"{fid}ErrorsAlarm"] = _alarm(
            stage, f"{name}-errors", f"{name} failed invocations (uncaught errors, timeouts).",
            {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Statistic": "Sum",
             "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": fid}}]},
        )
        resources[f"{fid}LoggedErrorsAlarm"] = {
            **_alarm(stage, f"{name}-logged-errors",
                     f"{name} logged errors (including failures it handled, such as rejected messages).",
                     {"Namespace": f"{stage.app_name}/{stage.name}", "MetricName": f"{name}-logged-errors",
                      "Statistic": "Sum"}),
            "DependsOn": [f"{fid}LoggedErrors"],
        }
    return resources


def _log_group_skips() -> list[dict[str, str]]:
    return [
        {"id": "CKV_AWS_158", "comment": "CloudWatch Logs encrypts log data at rest by default; a KMS key "
         "would need a key policy for the logs service and adds no control here."},
    ]


def _fold_schedule_function() -> dict[str, Any]:
    """Chalice generates a second function for @app.schedule. Its writes would race the aggregator's
    (both aggregate the same windows), so the aggregator takes the schedule as a second trigger
    (function_overrides) and this copy is never created: a merge template can add but not delete, so the
    function, its role and its log group carry a condition that is false."""
    return {
        logical_id: {"Condition": SCHEDULE_FUNCTION_OFF}
        for logical_id in (function_id(AGGREGATOR_SCHEDULE), role_id(AGGREGATOR_SCHEDULE),
                           log_group_id(AGGREGATOR_SCHEDULE))
    }


def api_overrides(stage: Stage) -> dict[str, Any]:
    rate, burst = THROTTLING.get(stage.name, DEFAULT_THROTTLING)
    return {
        API_ACCESS_LOGS: {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": stage.api_access_log_group_name,
                           "RetentionInDays": stage.log_retention_days, "Tags": stage.tag_list()},
            "Metadata": {"checkov": {"skip": _log_group_skips()}},
        },
        REST_API: {
            "Properties": {
                "Name": stage.api_name,
                "TracingEnabled": True,
                "AccessLogSetting": {"DestinationArn": _arn(API_ACCESS_LOGS),
                                     "Format": json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":"))},
                "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": True,
                                    "ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}],
                "Tags": stage.tags,
                "PropagateTags": True,
                "GatewayResponses": GATEWAY_RESPONSES,
            },
            "Metadata": {"checkov": {"skip": [
                {"id": "CKV_AWS_120", "comment": "No cache: every route is per caller (IAM) and returns "
                 "data that changes as ticks arrive."},
            ]}},
        },
    }


def outputs(stage: Stage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiUrl": {"Description": "Base URL of the REST API (IAM auth: sign requests with SigV4)",
                   "Value": {"Fn::Sub": f"https://${{{REST_API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
                                        f"/{stage.api_gateway_stage}/"}},
        "bucketName": {"Description": "Upload trade files here", "Value": {"Ref": BUCKET}},
        "tableArn": {"Description": "State table", "Value": _arn(TABLE)},
        "ingestQueueUrl": {"Value": {"Ref": QUEUE}},
        "deadLetterQueueUrl": {"Value": {"Ref": DEAD_LETTER_QUEUE}},
        "eventsDeadLetterQueueUrl": {"Value": {"Ref": EVENTS_DEAD_LETTER_QUEUE}},
        "alarmTopicArn": {"Value": {"Ref": ALARM_TOPIC}},
    }
    for function in DEPLOYED_FUNCTIONS:
        key = function_id(function)
        out[f"{key[0].lower()}{key[1:]}FunctionName"] = {"Value": {"Ref": function_id(function)}}
    return out


def merge_template(stage: Stage, events: AppEvents) -> dict[str, Any]:
    """The merge template for one stage."""
    assert set(FOLDED_FUNCTIONS) == {AGGREGATOR_SCHEDULE}
    return {
        "Description": f"{stage.app_name} market-data pipeline, stage {stage.name} (chalice package + infra/)",
        "Parameters": {
            "AlarmEmail": {"Type": "String", "Default": "",
                           "Description": "Optional e-mail address subscribed to the alarm topic",
                           "AllowedPattern": r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$"},
        },
        "Mappings": {"Design": {"ScheduleFunction": {"Deployed": "no, folded into DataAggregator"}}},
        "Conditions": {
            HAS_ALARM_EMAIL: {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
            SCHEDULE_FUNCTION_OFF: {"Fn::Equals": [
                {"Fn::FindInMap": ["Design", "ScheduleFunction", "Deployed"]}, "yes"]},
        },
        "Resources": {
            **storage(stage),
            **monitoring(stage),
            **function_overrides(stage, events),
            **_fold_schedule_function(),
            **api_overrides(stage),
        },
        "Outputs": outputs(stage),
    }


def chalice_api_log_group(stage: Stage) -> dict[str, Any]:
    """The log group of the API function `chalice deploy` creates. Chalice names the function <app>-<stage>
    but the log group it creates for it (with log_retention_in_days) <app>-<stage>-api_handler, after a
    function that does not exist (aws/chalice#2079): the function's real group gets its retention here."""
    return {CHALICE_API_LOGS: {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {"LogGroupName": f"/aws/lambda/{stage.chalice_function_name(API_HANDLER)}",
                       "RetentionInDays": stage.log_retention_days, "Tags": stage.tag_list()},
        "Metadata": {"checkov": {"skip": _log_group_skips()}},
    }}


def resources_template(stage: Stage) -> dict[str, Any]:
    """A plain CloudFormation stack of the stateful resources, for the `chalice deploy` path, where
    Chalice creates the functions, roles and API itself."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{stage.app_name} stage {stage.name}: resources for `chalice deploy`",
        "Parameters": {
            "AlarmEmail": {"Type": "String", "Default": "",
                           "AllowedPattern": r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$"},
        },
        "Conditions": {HAS_ALARM_EMAIL: {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}},
        "Resources": {**storage(stage), **monitoring(stage), **chalice_api_log_group(stage)},
        "Outputs": {k: v for k, v in outputs(stage).items()
                    if k in ("bucketName", "tableArn", "ingestQueueUrl", "deadLetterQueueUrl",
                             "eventsDeadLetterQueueUrl", "alarmTopicArn")},
    }
