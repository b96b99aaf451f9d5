"""`chalice deploy` for a stage, with the processor's SQS trigger kept single and bounded.

    python -m infra.deploy --stage dev            # check the trigger, chalice deploy, set its maximum concurrency
    python -m infra.deploy --stage dev --check    # only the check (exit 1 when a mapping is in the way)
    python -m infra.deploy --stage dev --repair   # delete the mappings in the way, then deploy

Chalice records what it created in .chalice/deployed/<stage>.json only when a deploy succeeds. A deploy that
fails after creating the processor's event source mapping leaves one the next deploy does not know about:
Chalice creates another, and AWS refuses it (ResourceConflictException). So before deploying, this lists the
mappings of the processor's queue and of the processor, and stops (exit 1, with the commands that fix it)
when one is not the mapping the deployed state records, or when another function reads the queue or the
processor reads another source. --repair deletes the unknown mappings between the queue and the processor
(Chalice then creates the trigger again; messages wait in the queue meanwhile). It never deletes a mapping
of another function or of another source: those are not this deploy's to remove.

It sets the trigger's ScalingConfig.MaximumConcurrency from config.json, and ReportBatchItemFailures once the
stage's REPORT_BATCH_ITEM_FAILURES is "true": on the recorded trigger before the deploy (so the trigger reads
reported failures before the function reports them) and on the deployed one after it. Chalice sets only what
app.py declares, and later deploys keep these settings (they update batch size and window only).
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .definitions import PROCESSOR, PROJECT_ROOT, Stage, load_stage

DEPLOYED_DIR = PROJECT_ROOT / ".chalice" / "deployed"
SETTLE_SECONDS = 120.0  # how long a mapping may take to finish creating or deleting
POLL_SECONDS = 2.0


class DeployError(Exception):
    pass


@dataclass(frozen=True)
class Mapping:
    """An event source mapping as Lambda lists it."""

    uuid: str
    source_arn: str
    function_arn: str
    state: str

    @property
    def function_name(self) -> str:
        return self.function_arn.split(":")[6]  # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]


@dataclass(frozen=True)
class Trigger:
    """The processor's trigger as it should be: this queue, this function, the mapping Chalice recorded."""

    queue_arn: str
    function_name: str
    known_uuid: str | None  # None before the first successful deploy


@dataclass(frozen=True)
class Finding:
    mapping: Mapping
    reason: str
    repairable: bool  # an unknown mapping between the queue and the processor: --repair deletes it


def state_path(stage: Stage) -> Path:
    return DEPLOYED_DIR / f"{stage.name}.json"


def deployed_trigger_uuid(path: Path, queue_name: str) -> str | None:
    """The UUID of the queue's trigger in Chalice's deployed state, if Chalice recorded one."""
    if not path.exists():
        return None
    resources = json.loads(path.read_text()).get("resources", [])
    uuids = [r["event_uuid"] for r in resources
             if r.get("resource_type") == "sqs_event" and r.get("queue") == queue_name]
    return uuids[0] if uuids else None


def queue_arn(sqs: Any, queue_name: str) -> str:
    try:
        url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        raise DeployError(f"queue {queue_name} does not exist: deploy the stage's resources stack first "
                          "(dist/resources-<stage>.json; README, Deploy with `chalice deploy`)") from None
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def list_mappings(lambda_client: Any, trigger: Trigger) -> list[Mapping]:
    """The mappings of the queue and of the function, each once."""
    found: dict[str, Mapping] = {}
    paginator = lambda_client.get_paginator("list_event_source_mappings")
    for query in ({"EventSourceArn": trigger.queue_arn}, {"FunctionName": trigger.function_name}):
        try:
            for page in paginator.paginate(**query):
                for m in page.get("EventSourceMappings", []):
                    found[m["UUID"]] = Mapping(uuid=m["UUID"], source_arn=m.get("EventSourceArn", ""),
                                               function_arn=m["FunctionArn"], state=m.get("State", ""))
        except lambda_client.exceptions.ResourceNotFoundException:
            pass  # the function does not exist yet: it has no mappings
    return list(found.values())


def check(trigger: Trigger, mappings: list[Mapping]) -> list[Finding]:
    """Every mapping that would make `chalice deploy` fail or leave more than one consumer."""
    findings = []
    for m in mappings:
        if m.source_arn != trigger.queue_arn:
            findings.append(Finding(m, f"{trigger.function_name} also reads {m.source_arn}", repairable=False))
        elif m.function_name != trigger.function_name:
            findings.append(Finding(m, f"another function, {m.function_name}, reads the queue too (the packaged "
                                       "stack of the same stage?)", repairable=False))
        elif m.uuid != trigger.known_uuid:
            findings.append(Finding(m, "Chalice's deployed state does not know it (left by a deploy that failed "
                                       "half-way?): chalice deploy would create a second one, which AWS refuses "
                                       "(ResourceConflictException)", repairable=True))
    return findings


def explain(stage: Stage, trigger: Trigger, findings: list[Finding]) -> str:
    lines = [f"The event source mappings of {trigger.queue_arn} or of {trigger.function_name} are not the one "
             f"trigger that .chalice/deployed/{stage.name}.json records ({trigger.known_uuid or 'none yet'}):"]
    lines += [f"  {f.mapping.uuid} ({f.mapping.state}): {f.reason}" for f in findings]
    if all(f.repairable for f in findings):
        lines.append(f"`python -m infra.deploy --stage {stage.name} --repair` (or `make deploy STAGE={stage.name} "
                     "ARGS=--repair`) deletes them and deploys; or by hand:")
    else:
        lines.append("--repair removes only unknown mappings between this queue and this function; remove the "
                     "others where they come from, or by hand:")
    lines.append(f"  aws lambda list-event-source-mappings --event-source-arn {trigger.queue_arn}")
    lines.append(f"  aws lambda list-event-source-mappings --function-name {trigger.function_name}")
    lines += [f"  aws lambda delete-event-source-mapping --uuid {f.mapping.uuid}" for f in findings]
    return "\n".join(lines)


def _settle(attempt: Callable[[], bool], what: str, sleep: Callable[[float], None]) -> None:
    """Retry attempt() until it returns True; mappings take seconds to finish creating or deleting."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while not attempt():
        if time.monotonic() > deadline:
            raise DeployError(f"gave up waiting for {what} after {SETTLE_SECONDS:g} s")
        sleep(POLL_SECONDS)


def repair(lambda_client: Any, findings: list[Finding], sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Delete the repairable mappings and wait until they are gone. Returns their UUIDs."""
    uuids = [f.mapping.uuid for f in findings if f.repairable]
    for f in findings:
        if f.repairable and f.mapping.state != "Deleting":
            lambda_client.delete_event_source_mapping(UUID=f.mapping.uuid)

    def gone(uuid: str) -> bool:
        try:
            lambda_client.get_event_source_mapping(UUID=uuid)
        except lambda_client.exceptions.ResourceNotFoundException:
            return True
        return False

    for uuid in uuids:
        _settle(functools.partial(gone, uuid), f"event source mapping {uuid} to be deleted", sleep)
    return uuids


def trigger_settings(stage: Stage) -> dict[str, Any]:
    """What Chalice cannot set on the trigger: the stage's maximum concurrency, and partial batch failures once
    the stage's functions are told the trigger reads them (README, step 3: a trigger Chalice creates again,
    after --repair, gets the setting back)."""
    settings: dict[str, Any] = {"ScalingConfig": {"MaximumConcurrency": stage.processor_maximum_concurrency}}
    if stage.environment.get("REPORT_BATCH_ITEM_FAILURES") == "true":
        settings["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
    return settings


def configure_trigger(lambda_client: Any, uuid: str, settings: dict[str, Any],
                      sleep: Callable[[float], None] = time.sleep) -> None:
    def update() -> bool:
        try:
            lambda_client.update_event_source_mapping(UUID=uuid, **settings)
        except lambda_client.exceptions.ResourceInUseException:
            return False  # still being created or updated
        return True

    _settle(update, f"event source mapping {uuid} to accept an update", sleep)


def inspect(stage: Stage, arn: str, lambda_client: Any,
            deployed_state: Path) -> tuple[Trigger, list[Finding], str | None]:
    """The trigger as it should be, the mappings in its way, and the recorded trigger's UUID if it exists."""
    known = deployed_trigger_uuid(deployed_state, stage.queue_name)
    trigger = Trigger(arn, stage.chalice_function_name(PROCESSOR), known)
    mappings = list_mappings(lambda_client, trigger)
    return trigger, check(trigger, mappings), known if any(m.uuid == known for m in mappings) else None


def run(stage: Stage, sqs: Any, lambda_client: Any, deployed_state: Path, deploy: Callable[[], int], *,
        repair_mappings: bool = False, check_only: bool = False, out: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep) -> int:
    """Check the trigger, deploy, then configure the trigger. Returns the exit status."""
    arn = queue_arn(sqs, stage.queue_name)
    trigger, findings, recorded = inspect(stage, arn, lambda_client, deployed_state)
    if findings and (check_only or not repair_mappings or not all(f.repairable for f in findings)):
        out(explain(stage, trigger, findings))
        return 1
    if check_only:
        out(f"{trigger.function_name}: its trigger is the one Chalice recorded ({recorded or 'none yet'})")
        return 0
    if findings:
        out("deleted event source mapping(s) " + ", ".join(repair(lambda_client, findings, sleep)))
    settings = trigger_settings(stage)
    if recorded:
        # Before the deploy too: the trigger must read reported failures before the function reports them.
        configure_trigger(lambda_client, recorded, settings, sleep)
    status = deploy()
    if status:
        out(f"chalice deploy failed ({status}); run this again: it checks for the trigger a failed deploy leaves")
        return status
    trigger, findings, recorded = inspect(stage, arn, lambda_client, deployed_state)
    if findings or not recorded:
        out(explain(stage, trigger, findings) if findings
            else f"chalice deploy recorded no trigger for {stage.queue_name} in {deployed_state}")
        return 1
    configure_trigger(lambda_client, recorded, settings, sleep)
    out(f"{trigger.function_name}: trigger {recorded} set to {json.dumps(settings)}")
    return 0


def chalice_deploy(stage: Stage, profile: str | None) -> int:
    command = [str(Path(sys.executable).parent / "chalice"), "deploy", "--stage", stage.name]
    if profile:
        command += ["--profile", profile]
    return subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True, help="stage in .chalice/config.json")
    parser.add_argument("--profile", help="AWS profile (for these checks and for chalice deploy)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only check the trigger; deploy nothing")
    mode.add_argument("--repair", action="store_true",
                      help="delete the mappings between the queue and the processor that Chalice does not know")
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stage = load_stage(args.stage)
        session = boto3.Session(profile_name=args.profile)
        return run(stage, session.client("sqs"), session.client("lambda"), state_path(stage),
                   lambda: chalice_deploy(stage, args.profile), repair_mappings=args.repair, check_only=args.check)
    except (DeployError, ValueError, BotoCoreError, ClientError) as exc:
        print(f"infra.deploy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
