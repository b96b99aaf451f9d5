"""The packaged stacks pass the offline validators (run by infra.validate in .venv-lint): cfn-lint on the
SAM template, the SAM transform, cfn-lint on the result, checkov on the result. Also checks that only
exist after the transform (tags on generated resources, the API stage) and that the validators can fail."""

from __future__ import annotations

import pytest

from infra.definitions import load_stage

from .cfn import condition, deployed, of_type, tags_of
from .conftest import STAGES, Validated

# Every checkov check the templates skip, and why a reviewer accepted it (the inline comment on the
# resource gives the specific reason). A new skip fails this test until it is reviewed here.
REVIEWED_SKIPS = {
    "CKV_AWS_18": "S3 access logging: uploads are recorded per object in the state table",
    "CKV_AWS_26": "SNS encryption: CloudWatch cannot publish to a topic under the AWS managed key",
    "CKV_AWS_27": "SQS encryption: SSE-SQS is on; the check only knows KMS",
    "CKV_AWS_115": "function concurrency: bounded by the trigger (the aggregator does reserve 1)",
    "CKV_AWS_116": "function DLQ: synchronous/SQS-triggered functions; the aggregator's events are hints",
    "CKV_AWS_117": "VPC: the functions only call AWS APIs",
    "CKV_AWS_119": "DynamoDB CMK: AWS owned key encryption",
    "CKV_AWS_120": "API cache: per-caller, changing data",
    "CKV_AWS_158": "log group KMS: CloudWatch Logs default encryption",
    "CKV_AWS_173": "Lambda environment KMS: no secrets in the environment",
}
TEMPLATES = [*STAGES, *(f"resources-{s}" for s in STAGES)]


@pytest.fixture(params=TEMPLATES)
def result(request: pytest.FixtureRequest, validated: dict[str, Validated]) -> Validated:
    return validated[request.param]


def test_cfn_lint_has_no_errors_and_no_warnings(result: Validated) -> None:
    assert result.report["cfn_lint_packaged"] == []
    assert result.report["cfn_lint_transformed"] == []


def test_the_sam_transform_succeeds_offline(result: Validated) -> None:
    assert result.report["sam_transform"] in ("ok", "not needed (no SAM transform)")
    assert result.transformed["Resources"]


def test_checkov_fails_nothing_and_every_skip_is_reviewed_and_explained(result: Validated) -> None:
    checkov = result.report["checkov"]
    assert checkov["failed"] == 0, checkov["failed_checks"]
    assert checkov["parsing_errors"] == 0
    assert checkov["passed"] > 0
    for skip in checkov["skipped_checks"]:
        assert skip["id"] in REVIEWED_SKIPS, skip
        assert len(skip["reason"] or "") >= 40, skip
    assert result.report["ok"] is True


def test_the_validators_reject_a_broken_template(validated: dict[str, Validated]) -> None:
    broken = validated["broken"].report
    assert broken["ok"] is False
    assert any(f["level"] == "Error" for f in broken["cfn_lint_packaged"])
    assert broken["checkov"]["failed"] > 0
    assert validated["exit_status"].report["returncode"] == 1  # so `make package` fails loudly


@pytest.mark.parametrize("stage", STAGES)
def test_after_the_transform_every_taggable_resource_carries_the_stage_tags(validated: dict[str, Validated],
                                                                             stage: str) -> None:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    expected = load_stage(stage).tags
    template = validated[stage].transformed
    untagged = []
    for logical_id, resource in deployed(template).items():
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
        if "Tags" in schema.get("properties", {}) and not tags_of(resource).items() >= expected.items():
            untagged.append((logical_id, resource["Type"]))
    # SAM cannot tag the rules and event source mappings it generates from a function's events (its models
    # have no Tags). They get the stage's tags as stack tags: `aws cloudformation deploy --tags` (README).
    assert {t for _, t in untagged} <= {"AWS::Events::Rule", "AWS::Lambda::EventSourceMapping"}, untagged


@pytest.mark.parametrize("stage", STAGES)
def test_the_deployed_api_stage_and_functions(validated: dict[str, Validated], stage: str) -> None:
    template = validated[stage].transformed
    resources = deployed(template)
    (api_stage,) = of_type(resources, "AWS::ApiGateway::Stage").values()
    p = api_stage["Properties"]
    assert p["StageName"] == "api" and p["TracingEnabled"] is True
    assert p["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    (method,) = p["MethodSettings"]
    assert method["ThrottlingRateLimit"] > 0 and method["ThrottlingBurstLimit"] > 0
    assert not of_type(resources, "AWS::ApiGateway::UsagePlan")
    functions = of_type(resources, "AWS::Lambda::Function")
    assert {f["Properties"]["FunctionName"] for f in functions.values()} == {
        f"DataIngestion-{stage}", f"DataProcessor-{stage}", f"DataAggregator-{stage}", f"DataApi-{stage}"}
    assert all(f["Properties"]["TracingConfig"] == {"Mode": "Active"} for f in functions.values())
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": load_stage(stage).processor_maximum_concurrency}
    rules = of_type(resources, "AWS::Events::Rule")
    targets = {r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]: r["Properties"] for r in rules.values()}
    assert len(rules) == 3
    assert {t for t in targets} == {"DataIngestion", "DataAggregator"}
    assert [r for r in rules.values() if r["Properties"].get("ScheduleExpression") == "rate(5 minutes)"]
    assert not condition(template, "ScheduleFunctionDeployed")
