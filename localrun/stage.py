"""A stage's environment, read from .chalice/config.json (the same values Lambda gets)."""

from __future__ import annotations

import json
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def stage_environment(stage: str, endpoint_url: str) -> dict[str, str]:
    """The variables a process needs to act as the stage's functions against the local emulator."""
    config = json.loads((PROJECT_ROOT / ".chalice" / "config.json").read_text())
    stages = config["stages"]
    if stage not in stages:
        raise SystemExit(f"unknown stage {stage!r}; .chalice/config.json has: {', '.join(stages)}")
    env = dict(config.get("environment_variables", {}))
    env.update(stages[stage].get("environment_variables", {}))
    env.update(LOCAL_CREDENTIALS)
    env["AWS_ENDPOINT_URL"] = endpoint_url
    env["STAGE"] = stage
    return env
