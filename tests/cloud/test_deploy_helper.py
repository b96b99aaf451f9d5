"""The `chalice deploy` helper (infra/deploy.py) against moto: the processor's queue and function exist, and
`chalice deploy` is played by a small fake that does what Chalice does with the SQS trigger (update the mapping
its deployed state records, or create one and record it) and what AWS does with a second mapping between the
same queue and function (refuse it). Each test asserts what Lambda and the deployed state hold afterwards."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra import deploy
from infra.definitions import PROCESSOR, Stage, load_stage, read_config

from ..moto_stack import CREDENTIALS


def emulated_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)


@dataclass
class Account:
    stage: Stage
    sqs: Any
    lambda_: Any
    queue_arn: str
    state: Path  # .chalice/deployed/<stage>.json
    output: list[str]
    trigger_at_deploy: dict[str, Any] = field(default_factory=dict)  # the recorded trigger when Chalice ran

    @property
    def processor(self) -> str:
        return self.stage.chalice_function_name(PROCESSOR)

    def create_function(self, name: str) -> None:
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return None\n")
        role = boto3.client("iam").create_role(
            RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        )["Role"]["Arn"]
        self.lambda_.create_function(FunctionName=name, Runtime="python3.11", Role=role, Handler="app.handler",
                                     Code={"ZipFile": code.getvalue()})

    def create_queue(self, name: str) -> str:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        return str(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    def map(self, queue_arn: str, function: str) -> str:
        return str(self.lambda_.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=function,
                                                            BatchSize=10)["UUID"])

    def mappings(self) -> dict[str, dict[str, Any]]:
        return {m["UUID"]: m for m in self.lambda_.list_event_source_mappings()["EventSourceMappings"]}

    def recorded_uuid(self) -> str | None:
        return deploy.deployed_trigger_uuid(self.state, self.stage.queue_name)

    def chalice_deploy(self) -> int:
        """What `chalice deploy` does with the trigger, and what AWS says to a second one."""
        known = self.recorded_uuid()
        self.trigger_at_deploy = self.mappings().get(known or "", {})
        if known in self.mappings():
            self.lambda_.update_event_source_mapping(UUID=known, BatchSize=10)
            return 0
        existing = [m for m in self.mappings().values()
                    if m["EventSourceArn"] == self.queue_arn and m["FunctionArn"].endswith(f":{self.processor}")]
        if existing:
            return 1  # ResourceConflictException: a mapping between this queue and function exists
        uuid = self.map(self.queue_arn, self.processor)
        self.state.parent.mkdir(parents=True, exist_ok=True)
        self.state.write_text(json.dumps({"schema_version": "2.0", "backend": "api", "resources": [{
            "name": f"{PROCESSOR}-sqs-event-source", "resource_type": "sqs_event", "queue": self.stage.queue_name,
            "queue_arn": self.queue_arn, "event_uuid": uuid,
            "lambda_arn": self.lambda_.get_function(FunctionName=self.processor)["Configuration"]["FunctionArn"],
        }]}))
        return 0

    def run(self, *, repair: bool = False, check_only: bool = False) -> int:
        return deploy.run(self.stage, self.sqs, self.lambda_, self.state, self.chalice_deploy,
                          repair_mappings=repair, check_only=check_only, out=self.output.append, sleep=lambda _: None)


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Account]:
    emulated_account(monkeypatch)
    stage = load_stage("dev")
    with mock_aws():
        a = Account(stage=stage, sqs=boto3.client("sqs"), lambda_=boto3.client("lambda"), queue_arn="",
                    state=tmp_path / ".chalice" / "deployed" / "dev.json", output=[])
        a.queue_arn = a.create_queue(stage.queue_name)  # the resources stack's queue
        a.create_function(a.processor)
        yield a


def test_a_first_deploy_leaves_one_trigger_bounded_by_the_stages_maximum_concurrency(account: Account) -> None:
    assert account.run() == 0
    (mapping,) = account.mappings().values()
    assert mapping["UUID"] == account.recorded_uuid()
    assert mapping["EventSourceArn"] == account.queue_arn
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": account.stage.processor_maximum_concurrency}
    assert account.stage.processor_maximum_concurrency == 5  # dev's value in config.json


def reporting_item_failures(stage: Stage) -> Stage:
    config = read_config()
    config["stages"][stage.name]["environment_variables"]["REPORT_BATCH_ITEM_FAILURES"] = "true"
    return load_stage(stage.name, config)


def test_the_trigger_reads_reported_failures_before_the_deploy_makes_the_function_report_them(
        account: Account) -> None:
    assert account.run() == 0
    (mapping,) = account.mappings().values()
    assert "FunctionResponseTypes" not in mapping  # REPORT_BATCH_ITEM_FAILURES is "false" in config.json
    account.stage = reporting_item_failures(account.stage)  # README, step 3
    assert account.run() == 0
    assert account.trigger_at_deploy["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert account.mappings()[mapping["UUID"]]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_a_trigger_created_again_after_a_repair_reads_reported_failures_too(account: Account) -> None:
    account.stage = reporting_item_failures(account.stage)
    orphan = account.map(account.queue_arn, account.processor)
    assert account.run(repair=True) == 0
    (mapping,) = account.mappings().values()
    assert mapping["UUID"] != orphan
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_a_second_deploy_keeps_the_same_trigger(account: Account) -> None:
    assert account.run() == 0
    first = account.recorded_uuid()
    assert account.run() == 0
    assert list(account.mappings()) == [first]


def test_a_trigger_left_by_a_deploy_that_failed_half_way_stops_the_deploy(account: Account) -> None:
    orphan = account.map(account.queue_arn, account.processor)  # created, but never recorded
    assert account.run() == 1
    assert not account.state.exists()  # chalice deploy did not run
    assert list(account.mappings()) == [orphan]
    report = "\n".join(account.output)
    assert f"delete-event-source-mapping --uuid {orphan}" in report
    assert "--repair" in report
    assert account.run(check_only=True) == 1


def test_without_the_check_the_same_deploy_fails(account: Account) -> None:
    # The fake refuses as AWS does: this is the failure the check prevents.
    account.map(account.queue_arn, account.processor)
    assert account.chalice_deploy() == 1


def test_repair_deletes_the_unknown_trigger_and_deploys(account: Account) -> None:
    orphan = account.map(account.queue_arn, account.processor)
    assert account.run(repair=True) == 0
    (uuid,) = account.mappings()
    assert uuid != orphan and uuid == account.recorded_uuid()
    assert account.mappings()[uuid]["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_a_duplicate_next_to_the_recorded_trigger_is_found_and_only_it_is_repaired(account: Account) -> None:
    assert account.run() == 0
    recorded = account.recorded_uuid()
    duplicate = account.map(account.queue_arn, account.processor)
    assert account.run(check_only=True) == 1
    report = "\n".join(account.output)
    assert duplicate in report and f"--uuid {recorded}" not in report
    assert account.run(repair=True) == 0
    assert list(account.mappings()) == [recorded] == [account.recorded_uuid()]


def test_another_function_reading_the_queue_is_reported_and_never_deleted(account: Account) -> None:
    account.create_function("DataProcessor-dev")  # e.g. the packaged stack of the same stage
    other = account.map(account.queue_arn, "DataProcessor-dev")
    assert account.run(repair=True) == 1
    assert list(account.mappings()) == [other]
    assert not account.state.exists()
    assert "another function, DataProcessor-dev" in "\n".join(account.output)


def test_the_processor_reading_another_queue_is_reported_and_never_deleted(account: Account) -> None:
    elsewhere = account.map(account.create_queue("somewhere-else"), account.processor)
    assert account.run(repair=True) == 1
    assert list(account.mappings()) == [elsewhere]
    assert "also reads" in "\n".join(account.output)


def test_a_clean_check_deploys_nothing(account: Account) -> None:
    assert account.run(check_only=True) == 0
    assert not account.mappings() and not account.state.exists()


def test_without_the_resources_stack_it_refuses(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    emulated_account(monkeypatch)
    monkeypatch.setattr(deploy, "DEPLOYED_DIR", tmp_path)
    with mock_aws():
        assert deploy.main(["--stage", "dev", "--check"]) == 1
    assert "deploy the stage's resources stack first" in capsys.readouterr().err
