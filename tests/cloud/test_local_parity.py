"""Local and cloud cannot drift: the emulator is provisioned (localrun/provision.py) from the definitions the
packaged stack is rendered from (infra/definitions.py), so what moto holds after provisioning matches the
template, setting for setting. And config.json alone decides names and tags."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.settings import Settings
from infra.definitions import emulator_settings, load_stage, read_config
from infra.template import AppEvents, merge_template
from localrun.provision import provision

from .cfn import of_type, tags_of
from .conftest import Packaged


def by_name(stack: Packaged, type_: str, key: str, name: str) -> dict[str, Any]:
    (resource,) = [r for r in of_type(stack.resources, type_).values() if r["Properties"].get(key) == name]
    return resource["Properties"]


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch, stack: Packaged) -> Any:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env(load_stage(stack.stage).environment)
    with mock_aws():
        names = provision(settings, {}, boto3.session.Session(region_name="us-east-1"))
        yield settings, names


def test_the_local_bucket_is_the_cloud_bucket(stack: Packaged, local: Any) -> None:
    settings, _ = local
    cloud = by_name(stack, "AWS::S3::Bucket", "BucketName", settings.bucket_name)
    s3 = boto3.client("s3")
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=settings.bucket_name)["Rules"]
    (cloud_rule,) = cloud["LifecycleConfiguration"]["Rules"]
    assert rule["Transitions"] == [{"Days": t["TransitionInDays"], "StorageClass": t["StorageClass"]}
                                   for t in cloud_rule["Transitions"]]
    assert rule["Expiration"] == {"Days": cloud_rule["ExpirationInDays"]}
    noncurrent = cloud_rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == noncurrent
    assert rule["AbortIncompleteMultipartUpload"] == cloud_rule["AbortIncompleteMultipartUpload"]
    assert s3.get_bucket_versioning(Bucket=settings.bucket_name)["Status"] == cloud["VersioningConfiguration"]["Status"]
    encryption = s3.get_bucket_encryption(Bucket=settings.bucket_name)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=settings.bucket_name)["TagSet"]}
    assert tags == tags_of({"Properties": cloud})


def test_the_local_table_is_the_cloud_table(stack: Packaged, local: Any) -> None:
    settings, _ = local
    cloud = by_name(stack, "AWS::DynamoDB::Table", "TableName", settings.table_name)
    ddb = boto3.client("dynamodb")
    table = ddb.describe_table(TableName=settings.table_name)["Table"]
    assert table["KeySchema"] == cloud["KeySchema"]
    assert table["BillingModeSummary"]["BillingMode"] == cloud["BillingMode"]
    ttl = ddb.describe_time_to_live(TableName=settings.table_name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == cloud["TimeToLiveSpecification"]["AttributeName"]
    backups = ddb.describe_continuous_backups(TableName=settings.table_name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]}
    assert tags == tags_of({"Properties": cloud})


def test_the_local_queues_are_the_cloud_queues(stack: Packaged, local: Any) -> None:
    settings, names = local
    sqs = boto3.client("sqs")
    cloud = by_name(stack, "AWS::SQS::Queue", "QueueName", settings.queue_name)
    cloud_dlq = by_name(stack, "AWS::SQS::Queue", "QueueName", settings.dead_letter_queue_name)
    attributes = sqs.get_queue_attributes(QueueUrl=names["queue_url"], AttributeNames=["All"])["Attributes"]
    assert int(attributes["VisibilityTimeout"]) == cloud["VisibilityTimeout"]
    assert int(attributes["MessageRetentionPeriod"]) == cloud["MessageRetentionPeriod"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == cloud["RedrivePolicy"]["maxReceiveCount"]
    assert redrive["deadLetterTargetArn"].endswith(":" + settings.dead_letter_queue_name)
    dlq_url = sqs.get_queue_url(QueueName=settings.dead_letter_queue_name)["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert int(dlq["MessageRetentionPeriod"]) == cloud_dlq["MessageRetentionPeriod"]
    for url, props in ((names["queue_url"], cloud), (dlq_url, cloud_dlq)):
        assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == tags_of({"Properties": props})


def test_a_tag_added_to_a_stage_in_config_json_reaches_every_resource() -> None:
    config = read_config()
    config["stages"]["dev"]["tags"]["CostCenter"] = "md-42"
    stage = load_stage("dev", config)
    template = merge_template(stage, AppEvents(schedule_expression="rate(5 minutes)"))
    tagged = [r for r in template["Resources"].values() if "Tags" in r.get("Properties", {})]
    assert len(tagged) > 20
    for resource in tagged:
        assert tags_of(resource)["CostCenter"] == "md-42"
    assert emulator_settings("dev", config)[0]["CostCenter"] == "md-42"  # and the local resources
