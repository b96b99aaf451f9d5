"""The cloud export, packaged once per session for every stage exactly as `make package` does it
(infra.build, then chalice package with the merge template), then validated offline in one pass.

Packaging runs stage after stage: Chalice caches the deployment zip under .chalice/deployments without
locking, so concurrent runs could write the same file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")
LINT_PYTHON = ROOT / ".venv-lint" / "bin" / "python"


@dataclass(frozen=True)
class Packaged:
    stage: str
    directory: Path
    template: dict[str, Any]  # sam.json as chalice package wrote it
    merge: dict[str, Any]  # the merge template infra.build rendered
    resources_path: Path  # the resources-only stack of the `chalice deploy` path

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]


@dataclass(frozen=True)
class Validated:
    report: dict[str, Any]
    transformed: dict[str, Any]


def _run(args: list[str], **kwargs: Any) -> None:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
                    pytrace=False)


def _package_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    return env


@pytest.fixture(scope="session")
def packaged_stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Packaged]:
    out = tmp_path_factory.mktemp("packaged")
    bin_dir = Path(sys.executable).parent
    stacks = {}
    for stage in STAGES:
        merge, resources = out / f"merge-{stage}.json", out / f"resources-{stage}.json"
        _run([sys.executable, "-m", "infra.build", "--stage", stage, "--merge-template", str(merge),
              "--resources-template", str(resources)], env=_package_env())
        _run([str(bin_dir / "chalice"), "package", "--stage", stage, "--merge-template", str(merge),
              str(out / stage)], env=_package_env())
        stacks[stage] = Packaged(stage=stage, directory=out / stage,
                                 template=json.loads((out / stage / "sam.json").read_text()),
                                 merge=json.loads(merge.read_text()), resources_path=resources)
    return stacks


@pytest.fixture(params=STAGES)
def stack(request: pytest.FixtureRequest, packaged_stacks: dict[str, Packaged]) -> Packaged:
    return packaged_stacks[request.param]


@pytest.fixture(scope="session")
def lint_env() -> Path:
    """.venv-lint, created by `make lint-env` (once; a lock keeps parallel sessions from racing)."""
    lock = Path(tempfile.gettempdir()) / f"lint-env-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]}.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _run(["make", "--no-print-directory", "-s", "lint-env"])
    assert LINT_PYTHON.exists(), "make lint-env did not create .venv-lint"
    return LINT_PYTHON


BROKEN_TEMPLATE = {
    # A template the validators must reject: proves a clean report is not an always-green pipeline.
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {"Open": {"Type": "AWS::S3::Bucket", "Properties": {"NotAProperty": True}}},
}


@pytest.fixture(scope="session")
def validated(packaged_stacks: dict[str, Packaged], lint_env: Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Validated]:
    """infra.validate over every template in one run: key = stage, "resources-<stage>" or "broken"."""
    broken = tmp_path_factory.mktemp("broken") / "broken.json"
    broken.write_text(json.dumps(BROKEN_TEMPLATE))
    paths = {stage: p.directory / "sam.json" for stage, p in packaged_stacks.items()}
    paths.update({f"resources-{stage}": p.resources_path for stage, p in packaged_stacks.items()})
    paths["broken"] = broken
    report_path = tmp_path_factory.mktemp("validation") / "report.json"
    result = subprocess.run([str(lint_env), "-m", "infra.validate", *map(str, paths.values()), "--report",
                             str(report_path)], cwd=ROOT, capture_output=True, text=True, check=False,
                            env=_package_env())
    if not report_path.exists():
        pytest.fail(f"infra.validate did not run:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False)
    reports = {Path(r["template"]).resolve(): r for r in json.loads(report_path.read_text())}
    out = {}
    for key, path in paths.items():
        report = reports[path.resolve()]
        transformed = json.loads(Path(report["transformed"]).read_text()) if "transformed" in report else {}
        out[key] = Validated(report=report, transformed=transformed)
    out["exit_status"] = Validated(report={"returncode": result.returncode, "stdout": result.stdout}, transformed={})
    return out
