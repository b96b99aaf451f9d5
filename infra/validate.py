"""Validate a packaged stack offline, and fail loudly on any finding. Runs in .venv-lint (see Makefile):

    .venv-lint/bin/python -m infra.validate dist/dev/sam.json [--report report.json]

1. cfn-lint on the packaged SAM template;
2. the SAM transform, run locally with aws-sam-translator (no AWS account): writes sam.transformed.json
   next to sam.json;
3. cfn-lint on the transformed (plain CloudFormation) template;
4. checkov on the transformed template; a check may only be skipped inline, with a reason
   (Metadata.checkov.skip, carried onto the generated resources by the transform).

Exit status 1 if any step reports anything (errors, warnings, failed checks), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
STAND_IN_BUCKET = "artifacts-bucket-of-aws-cloudformation-package"
PSEUDO_PARAMETERS = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}


class _NoManagedPolicies:
    """The stack names no AWS managed policy, so the translator never needs to look one up in IAM."""

    def load(self) -> dict[str, str]:
        return {}


def as_uploaded(template: dict[str, Any]) -> dict[str, Any]:
    """The template as `aws cloudformation package` leaves it: local code locations become S3 URIs
    (a stand-in bucket here; the translator only checks the form)."""
    uploaded = json.loads(json.dumps(template))
    for resource in uploaded.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            location = properties.get(key)
            if isinstance(location, str) and not location.startswith("s3://"):
                properties[key] = f"s3://{STAND_IN_BUCKET}/{Path(location).name}"
    return uploaded


def sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    template = as_uploaded(template)
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO_PARAMETERS["AWS::Region"])
    from samtranslator.translator.transform import transform

    parameters = {**PSEUDO_PARAMETERS}
    for name, spec in template.get("Parameters", {}).items():
        if "Default" in spec:
            parameters[name] = spec["Default"]
    return transform(template, parameters, _NoManagedPolicies(), passthrough_metadata=True)  # type: ignore[arg-type]


def cfn_lint(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Every cfn-lint finding (errors, warnings, informational), per template, in one run."""
    result = subprocess.run([str(BIN / "cfn-lint"), "--format", "json", "--", *map(str, paths)],
                            capture_output=True, text=True, check=False)
    try:
        matches = json.loads(result.stdout) if result.stdout.strip() else []
    except json.JSONDecodeError:
        raise RuntimeError(f"cfn-lint failed to run: {result.stderr[-2000:] or result.stdout[-2000:]}") from None
    if result.returncode and not matches:
        raise RuntimeError(f"cfn-lint failed to run (exit {result.returncode}): {result.stderr[-2000:]}")
    found: dict[str, list[dict[str, Any]]] = {str(p): [] for p in paths}
    for m in matches:
        found.setdefault(str(Path(m["Filename"])), []).append({
            "rule": m["Rule"]["Id"], "level": m["Level"], "message": m["Message"],
            "path": "/".join(str(p) for p in m.get("Location", {}).get("Path") or [])})
    return found


def checkov(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """checkov's CloudFormation checks per template, in one run: counts, failed checks, and skipped
    checks with their reasons."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    files = [arg for p in paths for arg in ("--file", str(p))]
    result = subprocess.run(
        [str(BIN / "checkov"), "--compact", "--framework", "cloudformation", "--skip-download",
         "--output", "json", *files],
        capture_output=True, text=True, check=False, env=env,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"checkov failed to run: {result.stderr[-2000:] or result.stdout[-2000:]}") from None
    if isinstance(report, list):  # one entry per framework
        report = next(r for r in report if r.get("check_type") == "cloudformation")
    results = report.get("results", {})
    per_file: dict[str, dict[str, Any]] = {
        str(p): {"passed": 0, "failed": 0, "skipped": 0, "failed_checks": [], "skipped_checks": []} for p in paths}
    by_name = {p.name: str(p) for p in paths}
    for kind in ("passed", "failed", "skipped"):
        for check in results.get(f"{kind}_checks", []):
            path = str(Path(check.get("file_abs_path") or check["file_path"]))
            if path not in per_file:
                path = by_name.get(Path(path).name, path)
            entry = per_file.setdefault(path, {"passed": 0, "failed": 0, "skipped": 0,
                                               "failed_checks": [], "skipped_checks": []})
            entry[kind] += 1
            if kind != "passed":
                entry[f"{kind}_checks"].append({
                    "id": check["check_id"], "name": check.get("check_name"), "resource": check.get("resource"),
                    "reason": (check.get("check_result") or {}).get("suppress_comment")})
    parsing_errors = report.get("summary", {}).get("parsing_errors", 0)
    for entry in per_file.values():
        entry["parsing_errors"] = parsing_errors
    return per_file


def _checkov_ok(result: dict[str, Any]) -> bool:
    unexplained = [c for c in result["skipped_checks"] if not (c["reason"] or "").strip()]
    return result["failed"] == 0 and result["parsing_errors"] == 0 and not unexplained and result["passed"] > 0


def validate(paths: list[Path]) -> list[dict[str, Any]]:
    """Validate each template (a packaged SAM template, or a plain CloudFormation one)."""
    reports = []
    for path in paths:
        report: dict[str, Any] = {"template": str(path)}
        template = json.loads(path.read_text())
        if "AWS::Serverless-2016-10-31" not in str(template.get("Transform", "")):
            report["sam_transform"] = "not needed (no SAM transform)"
            report["transformed"] = str(path)
        else:
            try:
                transformed = sam_transform(template)
            except Exception as exc:  # the translator's own errors say what is wrong with the template
                report["sam_transform"] = f"failed: {exc}"
            else:
                report["sam_transform"] = "ok"
                transformed_path = path.with_name(path.stem + ".transformed.json")
                transformed_path.write_text(json.dumps(transformed, indent=2) + "\n")
                report["transformed"] = str(transformed_path)
        reports.append(report)
    to_lint = [Path(r["template"]) for r in reports]
    to_lint += [Path(r["transformed"]) for r in reports if r.get("transformed", r["template"]) != r["template"]]
    lint = cfn_lint(to_lint)
    scanned = checkov([Path(r["transformed"]) for r in reports if "transformed" in r])
    for report in reports:
        report["cfn_lint_packaged"] = lint[report["template"]]
        if "transformed" not in report:
            report["ok"] = False
            continue
        same = report["transformed"] == report["template"]
        report["cfn_lint_transformed"] = [] if same else lint[report["transformed"]]
        report["checkov"] = scanned[report["transformed"]]
        report["ok"] = (not report["cfn_lint_packaged"] and not report["cfn_lint_transformed"]
                        and _checkov_ok(report["checkov"]))
    return reports


def _print(report: dict[str, Any]) -> None:
    def lint_line(name: str, findings: list[dict[str, Any]]) -> None:
        errors = sum(f["level"] == "Error" for f in findings)
        warnings = sum(f["level"] == "Warning" for f in findings)
        print(f"  {name}: {errors} errors, {warnings} warnings, {len(findings) - errors - warnings} other")
        for f in findings:
            print(f"    {f['level']} {f['rule']} {f['path']}: {f['message']}")

    print(report["template"])
    lint_line("cfn-lint (packaged)", report["cfn_lint_packaged"])
    print(f"  SAM transform: {report['sam_transform']}")
    if "checkov" in report:
        lint_line("cfn-lint (transformed)", report["cfn_lint_transformed"])
        c = report["checkov"]
        print(f"  checkov: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped (reasons inline)")
        for check in c["failed_checks"]:
            print(f"    FAILED {check['id']} {check['resource']}: {check['name']}")
    print("  result: " + ("OK" if report["ok"] else "FINDINGS (see above)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.validate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("templates", type=Path, nargs="+",
                        help="sam.json written by chalice package, or a plain CloudFormation template")
    parser.add_argument("--report", type=Path, help="also write the findings here as JSON")
    args = parser.parse_args(argv)
    reports = validate([p.resolve() for p in args.templates])
    if args.report:
        args.report.write_text(json.dumps(reports, indent=2) + "\n")
    for report in reports:
        _print(report)
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
