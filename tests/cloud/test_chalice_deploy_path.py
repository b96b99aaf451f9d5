"""The `chalice deploy` path, checked against Chalice's own code: the functions it would create are read from
the application graph `chalice deploy` builds (chalice.deploy.appgraph, with the project's config.json), not
from a copy of its naming rule. Each function's policy file must let it write to the log group Lambda writes
to, `/aws/lambda/<function name>`, and that log group must exist with the stage's retention: made by Chalice
or by the resources stack deployed first."""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

import pytest
from chalice.cli.factory import CLIFactory
from chalice.deploy import models
from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder

from infra.definitions import CHALICE_FUNCTIONS, load_stage

from .cfn import as_list, of_type
from .conftest import STAGES, Packaged

ROOT = Path(__file__).resolve().parents[2]
REGION, ACCOUNT = "us-east-1", "123456789012"


@pytest.fixture(scope="module", params=STAGES)
def chalice_functions(request: pytest.FixtureRequest) -> tuple[str, dict[str, models.LambdaFunction]]:
    """(stage, {name in app.py: the function `chalice deploy` would create})."""
    stage = request.param
    factory = CLIFactory(project_dir=str(ROOT), environ=dict(os.environ))  # loading app.py sets the stage's env
    config = factory.create_config_obj(chalice_stage_name=stage)
    application = ApplicationGraphBuilder().build(config, stage)
    functions = {r.resource_name: r for r in DependencyBuilder().build_dependencies(application)
                 if isinstance(r, models.LambdaFunction)}
    assert set(functions) == set(CHALICE_FUNCTIONS)
    return stage, functions


def log_stream_arn(function_name: str) -> str:
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function_name}:log-stream:2024/07/01/[$LATEST]0a1b"


def allowed(document: dict, action: str, arn: str) -> bool:
    return any(s["Effect"] == "Allow" and action in as_list(s["Action"])
               and any(fnmatch.fnmatchcase(arn, r) for r in as_list(s["Resource"]))
               for s in as_list(document["Statement"]))


def test_infra_names_each_function_as_chalice_deploy_does(
        chalice_functions: tuple[str, dict[str, models.LambdaFunction]]) -> None:
    stage_name, functions = chalice_functions
    stage = load_stage(stage_name)
    assert {name: stage.chalice_function_name(name) for name in functions} == {
        name: f.function_name for name, f in functions.items()}
    # The API handler is the one Chalice names differently from the rest.
    assert functions["api_handler"].function_name == f"market-data-{stage_name}"
    assert functions["DataProcessor"].function_name == f"market-data-{stage_name}-DataProcessor"


def test_each_function_may_write_its_own_logs_and_no_one_elses(
        chalice_functions: tuple[str, dict[str, models.LambdaFunction]]) -> None:
    _, functions = chalice_functions
    for name, function in functions.items():
        assert isinstance(function.role, models.ManagedIAMRole)
        assert isinstance(function.role.policy, models.FileBasedIAMPolicy)
        document = json.loads(Path(function.role.policy.filename).read_text())  # the file Chalice attaches
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            assert allowed(document, action, log_stream_arn(function.function_name)), (name, action)
            others = [f.function_name for f in functions.values() if f is not function]
            assert not [o for o in others if allowed(document, action, log_stream_arn(o))], (name, action)


def test_each_function_has_a_log_group_with_the_stages_retention(
        chalice_functions: tuple[str, dict[str, models.LambdaFunction]],
        packaged_stacks: dict[str, Packaged]) -> None:
    stage_name, functions = chalice_functions
    retention = load_stage(stage_name).log_retention_days
    assert retention == 7
    by_chalice = {f.log_group.log_group_name: f.log_group.retention_in_days
                  for f in functions.values() if f.log_group is not None}
    resources_stack = json.loads(packaged_stacks[stage_name].resources_path.read_text())
    by_stack = {g["Properties"]["LogGroupName"]: g["Properties"]["RetentionInDays"]
                for g in of_type(resources_stack["Resources"], "AWS::Logs::LogGroup").values()}
    for function in functions.values():
        group = f"/aws/lambda/{function.function_name}"
        assert retention in (by_chalice.get(group), by_stack.get(group)), f"{group} has no {retention}-day retention"
    # The resources stack adds only the groups Chalice gets wrong, each for a function Chalice creates.
    real_groups = {f"/aws/lambda/{f.function_name}" for f in functions.values()}
    assert set(by_stack) <= real_groups - set(by_chalice)
