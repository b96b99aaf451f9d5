"""Render a stage's cloud definitions from .chalice/config.json (and the triggers app.py declares).

    python -m infra.build --stage dev --merge-template dist/merge-dev.json
    python -m infra.build --stage dev --resources-template dist/resources-dev.json   # `chalice deploy` path
    python -m infra.build --write-policies      # .chalice/policies/<stage>/<function>.json, every stage
    python -m infra.build --check-policies      # fail if those files are stale
    python -m infra.build --stage dev --print-tags   # Key=Value ... for `aws cloudformation deploy --tags`

Fails (exit 1, with the reason) when config.json and app.py disagree with what the template covers.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import py_compile
import sys
from pathlib import Path
from typing import Any

from . import policies
from .definitions import CHALICE_FUNCTIONS, PROJECT_ROOT, Stage, load_stage, read_config, stage_names
from .template import AppEvents, merge_template, resources_template

POLICY_DIR = PROJECT_ROOT / ".chalice"


class BuildError(Exception):
    pass


def app_events(stage: Stage) -> AppEvents:
    """Import app.py as `chalice package` does (with the stage's environment) and read its triggers."""
    os.environ.update(stage.environment)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from chalice.app import ScheduledEventConfig, ScheduleExpression

    import app as app_module

    chalice_app = app_module.app
    declared = {s.name for s in chalice_app.event_sources} | {f.name for f in chalice_app.pure_lambda_functions}
    if chalice_app.routes:
        declared.add("api_handler")
    if declared != set(CHALICE_FUNCTIONS):
        raise BuildError(f"app.py declares functions {sorted(declared)}, infra/definitions.py knows "
                         f"{sorted(CHALICE_FUNCTIONS)}: teach the template about the difference")
    schedules = {s.name: s.schedule_expression for s in chalice_app.event_sources
                 if isinstance(s, ScheduledEventConfig)}
    expression = schedules["DataAggregatorSchedule"]
    if isinstance(expression, ScheduleExpression):
        expression = expression.to_string()
    return AppEvents(schedule_expression=str(expression))


def check_config(stage: Stage) -> None:
    """config.json must point each function at its generated policy file and not autogenerate policies."""
    config = read_config()
    stage_config = config["stages"][stage.name]
    if stage_config.get("autogen_policy", config.get("autogen_policy")) is not False:
        raise BuildError(f"stage {stage.name}: set \"autogen_policy\": false in config.json "
                         "(Chalice's generated policy grants sqs:* on every queue: aws/chalice#1565)")
    for function in CHALICE_FUNCTIONS:
        expected = policies.policy_file(stage, function)
        if stage.functions[function].iam_policy_file != expected:
            raise BuildError(f"stage {stage.name}: config.json should set lambda_functions.{function}."
                             f"iam_policy_file to {expected!r}")
    if not stage.log_retention_days:
        raise BuildError(f"stage {stage.name}: set log_retention_in_days in config.json")


def policy_files() -> dict[Path, str]:
    """Every stage's policy files for `chalice deploy`, path -> content."""
    files = {}
    for name in stage_names():
        stage = load_stage(name)
        for function in CHALICE_FUNCTIONS:
            document = policies.chalice_deploy_policy(stage, function)
            files[POLICY_DIR / policies.policy_file(stage, function)] = json.dumps(document, indent=2) + "\n"
    return files


def compile_bytecode() -> None:
    """Compile chalicelib/ to bytecode beside it (``__pycache__``), which `chalice package` zips with the
    sources: Lambda's code directory is read-only, so without it every cold start compiles the app again
    (about a third of importing it). Checked-hash bytecode is verified against the source it came from, so a
    stale file is never run, whatever the archive does to timestamps. (Chalice zips app.py alone.)"""
    mode = py_compile.PycInvalidationMode.CHECKED_HASH
    if not compileall.compile_dir(str(PROJECT_ROOT / "chalicelib"), quiet=1, force=True, invalidation_mode=mode):
        raise BuildError("chalicelib/ does not compile")


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", help="stage in .chalice/config.json")
    parser.add_argument("--merge-template", type=Path, help="write the merge template for chalice package here")
    parser.add_argument("--resources-template", type=Path, help="write the resources-only stack here")
    parser.add_argument("--write-policies", action="store_true", help="write .chalice/policies/ for every stage")
    parser.add_argument("--check-policies", action="store_true", help="fail if .chalice/policies/ is stale")
    parser.add_argument("--print-tags", action="store_true",
                        help="print the stage's tags as Key=Value words (stack tags for aws cloudformation deploy)")
    args = parser.parse_args(argv)
    try:
        if args.print_tags:
            if not args.stage:
                parser.error("--stage is required with --print-tags")
            print(" ".join(f"{k}={v}" for k, v in load_stage(args.stage).tags.items()))
        if args.merge_template or args.resources_template:
            if not args.stage:
                parser.error("--stage is required with --merge-template/--resources-template")
            stage = load_stage(args.stage)
            check_config(stage)
            if args.merge_template:
                _write_json(args.merge_template, merge_template(stage, app_events(stage)))
                compile_bytecode()  # what chalice package zips next
            if args.resources_template:
                _write_json(args.resources_template, resources_template(stage))
        if args.write_policies:
            for path, content in policy_files().items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
        if args.check_policies:
            stale = [str(p.relative_to(PROJECT_ROOT)) for p, c in policy_files().items()
                     if not p.exists() or p.read_text() != c]
            if stale:
                raise BuildError("stale policy files (run `python -m infra.build --write-policies`): "
                                 + ", ".join(stale))
    except (BuildError, ValueError) as exc:
        print(f"infra.build: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
