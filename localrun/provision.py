"""Create a stage's resources in the emulator, from the stage's settings and the app's own event sources.

Names come from the stage's settings (config.json); everything else (lifecycle rules, encryption, queue
attributes and redrive, TTL, point-in-time recovery, deletion protection, tags) from infra/definitions.py,
the module the cloud template is rendered from, so the local stack and the cloud stack cannot drift. (moto's
CloudFormation ignores versioning, lifecycle and PITR, hence API calls rather than deploying the template.)

The EventBridge rules use the exact patterns that app.py declares; since moto cannot invoke Lambda,
their target is a local queue that the driver polls and delivers to the matching handler.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from chalicelib.settings import Settings
from infra import definitions


def events_queue_name(settings: Settings) -> str:
    return f"market-data-local-events-{settings.stage}"


def _ignore(codes: tuple[str, ...], call: Any, **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in codes:
            raise
        return None


def provision(
    settings: Settings, event_patterns: dict[str, dict[str, Any]], session: boto3.session.Session
) -> dict[str, str]:
    """Create (or leave as they are) the bucket, table, queues and rules. Returns names and URLs."""
    region = settings.region
    s3 = session.client("s3", region_name=region)
    ddb = session.client("dynamodb", region_name=region)
    sqs = session.client("sqs", region_name=region)
    events = session.client("events", region_name=region)
    tags, visibility_timeout = definitions.emulator_settings(settings.stage)
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]

    bucket = settings.bucket_name
    _ignore(("BucketAlreadyOwnedByYou", "BucketAlreadyExists"), s3.create_bucket, Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": definitions.BUCKET_VERSIONING})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": definitions.BUCKET_ENCRYPTION}}]})
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=dict(definitions.PUBLIC_ACCESS_BLOCK))
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
        "Rules": definitions.lifecycle_rules_api()})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_list})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})

    attribute_definitions, key_schema = definitions.table_key_api()
    _ignore(("ResourceInUseException",), ddb.create_table,
            TableName=settings.table_name,
            AttributeDefinitions=attribute_definitions,
            KeySchema=key_schema,
            BillingMode=definitions.BILLING_MODE,
            DeletionProtectionEnabled=settings.stage in definitions.PROTECTED_STAGES,
            Tags=tag_list)
    ddb.get_waiter("table_exists").wait(TableName=settings.table_name)
    ddb.update_continuous_backups(TableName=settings.table_name,
                                  PointInTimeRecoverySpecification={
                                      "PointInTimeRecoveryEnabled": definitions.POINT_IN_TIME_RECOVERY})
    _ignore(("ValidationException",), ddb.update_time_to_live, TableName=settings.table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": definitions.TTL_ATTRIBUTE})

    def queue(name: str, dlq: str) -> str:
        dlq_url = sqs.create_queue(QueueName=dlq, tags=tags,
                                   Attributes=definitions.queue_attributes_api(visibility_timeout, None))["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = definitions.queue_attributes_api(visibility_timeout, dlq_arn)
        return sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]

    queue_url = queue(settings.queue_name, settings.dead_letter_queue_name)
    events_name = events_queue_name(settings)
    events_url = queue(events_name, events_name + "-dlq")
    events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for name, pattern in event_patterns.items():
        rule = f"market-data-{settings.stage}-{name}"
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED", Tags=tag_list)
        events.put_targets(Rule=rule, Targets=[{"Id": "local-driver", "Arn": events_arn}])
    return {"bucket": bucket, "table": settings.table_name, "queue_url": queue_url, "events_queue_url": events_url}
