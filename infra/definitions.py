"""One stage of the pipeline, read from .chalice/config.json, and the settings of the resources that the
cloud template (infra/template.py) and the local emulator (localrun/provision.py) both create.

Names, the stage suffix and the tags come from config.json only: the names the code reads are the stage's
environment variables; the few names no code reads (alarm topic, log groups, the events dead-letter queue)
are derived here from the stage. Plain data and pure functions: no boto3, no chalice, no network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.adapters.dynamodb.layout import KEY_SCHEMA
from chalicelib.adapters.dynamodb.layout import TTL_ATTRIBUTE as TTL_ATTRIBUTE  # the table enables it

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = PROJECT_ROOT / ".chalice" / "config.json"

# The functions, by the names app.py gives them (Chalice's "api_handler" serves every route).
API_HANDLER = "api_handler"
INGESTION = "DataIngestion"
PROCESSOR = "DataProcessor"
AGGREGATOR = "DataAggregator"
AGGREGATOR_SCHEDULE = "DataAggregatorSchedule"
CHALICE_FUNCTIONS = (API_HANDLER, INGESTION, PROCESSOR, AGGREGATOR, AGGREGATOR_SCHEDULE)
# Chalice makes one Lambda per decorator, so the 5-minute schedule gets a function of its own. The packaged
# stack folds the schedule into the aggregator (one function, two triggers, one reserved concurrency for
# all its runs, which coordinate per symbol through leases); see infra/template.py.
FOLDED_FUNCTIONS = {AGGREGATOR_SCHEDULE: AGGREGATOR}
FUNCTION_BASENAMES = {API_HANDLER: "DataApi"}  # the others keep their Chalice name
REQUIRED_ENVIRONMENT = ("STAGE", "TABLE_NAME", "BUCKET_NAME", "QUEUE_NAME", "DLQ_NAME", "EVENT_SOURCE")
REQUIRED_TAGS = ("Project", "Environment")
PROTECTED_STAGES = frozenset({"prod"})  # deletion protection, resources retained on stack deletion

# Bucket: versioned (a key's newest version is its truth), encrypted by default, never public.
BUCKET_VERSIONING = "Enabled"
BUCKET_ENCRYPTION = "AES256"
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                       "RestrictPublicBuckets": True}

# Table: the single-table layout of chalicelib/adapters/dynamodb; on demand, with point-in-time recovery;
# idempotency records carry a TTL.
BILLING_MODE = "PAY_PER_REQUEST"
POINT_IN_TIME_RECOVERY = True

# Queues: a message that fails 5 receives goes to the dead-letter queue, which keeps it 14 days (longer
# than the source queue: SQS keeps the original enqueue time when it moves a message).
MAX_RECEIVE_COUNT = 5
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
VISIBILITY_TIMEOUT_FACTOR = 6  # AWS guidance for Lambda consumers: at least 6x the function timeout
# The SQS trigger's ScalingConfig.MaximumConcurrency (per stage in config.json, as sqs_maximum_concurrency of
# the processor): how many processor instances a backlog may start. AWS accepts 2 to 1000.
MAXIMUM_CONCURRENCY_RANGE = (2, 1000)

# Chalice's own defaults, used when config.json says nothing.
_DEFAULT_TIMEOUT = 60
_DEFAULT_MEMORY = 128


@dataclass(frozen=True)
class Lifecycle:
    """Raw uploads move to infrequent access, then expire; overwritten versions expire sooner."""

    rule_id: str = "raw-uploads"
    infrequent_access_after_days: int = 30
    expire_after_days: int = 365
    noncurrent_versions_expire_after_days: int = 30
    abort_multipart_after_days: int = 7


LIFECYCLE = Lifecycle()


@dataclass(frozen=True)
class FunctionSettings:
    chalice_name: str
    timeout: int
    memory: int
    reserved_concurrency: int | None
    iam_policy_file: str | None
    sqs_maximum_concurrency: int | None  # the SQS trigger's ScalingConfig.MaximumConcurrency


@dataclass(frozen=True)
class Stage:
    name: str
    app_name: str
    environment: dict[str, str]
    tags: dict[str, str]
    api_gateway_stage: str
    log_retention_days: int
    functions: dict[str, FunctionSettings]
    queue_age_alarm_seconds: int  # alarm when the ingest queue's oldest message has waited this long

    # -- names the code reads (environment variables) ---------------------------------------------
    @property
    def table_name(self) -> str:
        return self.environment["TABLE_NAME"]

    @property
    def bucket_name(self) -> str:
        return self.environment["BUCKET_NAME"]

    @property
    def queue_name(self) -> str:
        return self.environment["QUEUE_NAME"]

    @property
    def dead_letter_queue_name(self) -> str:
        return self.environment["DLQ_NAME"]

    @property
    def event_source(self) -> str:
        return self.environment["EVENT_SOURCE"]

    # -- names no code reads, derived from the stage ----------------------------------------------
    @property
    def events_dead_letter_queue_name(self) -> str:
        """S3 events DataIngestion failed to handle (after Lambda's retries): files not ingested."""
        return f"{self.app_name}-events-dlq-{self.name}"

    @property
    def alarm_topic_name(self) -> str:
        return f"{self.app_name}-alarms-{self.name}"

    @property
    def api_name(self) -> str:
        return f"{self.app_name}-{self.name}"

    @property
    def api_access_log_group_name(self) -> str:
        return f"/aws/apigateway/{self.app_name}-{self.name}/access"

    def function_name(self, chalice_name: str) -> str:
        """The Lambda function's name in the packaged stack: DataIngestion-dev, DataApi-prod, ..."""
        chalice_name = FOLDED_FUNCTIONS.get(chalice_name, chalice_name)
        return f"{FUNCTION_BASENAMES.get(chalice_name, chalice_name)}-{self.name}"

    def chalice_function_name(self, chalice_name: str) -> str:
        """The name `chalice deploy` gives the function (it cannot be configured: aws/chalice#1368):
        <app>-<stage>-<name>, except the API handler, which is plain <app>-<stage>."""
        if chalice_name == API_HANDLER:
            return f"{self.app_name}-{self.name}"
        return f"{self.app_name}-{self.name}-{chalice_name}"

    # -- settings -------------------------------------------------------------------------------------
    @property
    def protected(self) -> bool:
        return self.name in PROTECTED_STAGES

    @property
    def visibility_timeout(self) -> int:
        return VISIBILITY_TIMEOUT_FACTOR * self.functions[PROCESSOR].timeout

    @property
    def processor_maximum_concurrency(self) -> int:
        value = self.functions[PROCESSOR].sqs_maximum_concurrency
        assert value is not None  # load_stage requires it
        return value

    def tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags.items()]


def read_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def stage_names(config: dict[str, Any] | None = None) -> list[str]:
    return list((config or read_config())["stages"])


def _function_settings(config: dict[str, Any], stage: dict[str, Any], function: str) -> FunctionSettings:
    def lookup(key: str, default: Any) -> Any:
        for scope in (stage.get("lambda_functions", {}).get(function, {}), stage,
                      config.get("lambda_functions", {}).get(function, {}), config):
            if scope.get(key) is not None:
                return scope[key]
        return default

    return FunctionSettings(
        chalice_name=function,
        timeout=int(lookup("lambda_timeout", _DEFAULT_TIMEOUT)),
        memory=int(lookup("lambda_memory_size", _DEFAULT_MEMORY)),
        reserved_concurrency=lookup("reserved_concurrency", None),
        iam_policy_file=lookup("iam_policy_file", None),
        sqs_maximum_concurrency=lookup("sqs_maximum_concurrency", None),
    )


def load_stage(name: str, config: dict[str, Any] | None = None) -> Stage:
    """The stage as Chalice resolves it: stage function > stage > top-level function > top level."""
    config = config or read_config()
    stages = config.get("stages", {})
    if name not in stages:
        raise ValueError(f"unknown stage {name!r}; .chalice/config.json has: {', '.join(stages)}")
    stage = stages[name]
    environment = {**config.get("environment_variables", {}), **stage.get("environment_variables", {})}
    tags = {**config.get("tags", {}), **stage.get("tags", {})}
    missing = [k for k in REQUIRED_ENVIRONMENT if not environment.get(k)]
    if missing:
        raise ValueError(f"stage {name!r} lacks environment variable(s) {', '.join(missing)} in config.json")
    if environment["STAGE"] != name:
        raise ValueError(f"stage {name!r} has STAGE={environment['STAGE']!r} in config.json")
    missing = [k for k in REQUIRED_TAGS if not tags.get(k)]
    if missing:
        raise ValueError(f"stage {name!r} lacks tag(s) {', '.join(missing)} in config.json")
    if tags["Environment"] != name:
        raise ValueError(f"stage {name!r} is tagged Environment={tags['Environment']!r} in config.json")
    functions = {fn: _function_settings(config, stage, fn) for fn in CHALICE_FUNCTIONS}
    low, high = MAXIMUM_CONCURRENCY_RANGE
    concurrency = functions[PROCESSOR].sqs_maximum_concurrency
    if not isinstance(concurrency, int) or not low <= concurrency <= high:
        raise ValueError(f"stage {name!r}: set lambda_functions.{PROCESSOR}.sqs_maximum_concurrency in config.json "
                         f"to a whole number from {low} to {high} (it is {concurrency!r})")
    alarm_seconds = stage.get("queue_age_alarm_seconds", config.get("queue_age_alarm_seconds"))
    if not isinstance(alarm_seconds, int) or alarm_seconds < 60:
        raise ValueError(f"stage {name!r}: set queue_age_alarm_seconds in config.json to at least 60 "
                         f"(it is {alarm_seconds!r})")
    return Stage(
        name=name,
        app_name=config["app_name"],
        environment=environment,
        tags=tags,
        api_gateway_stage=str(stage.get("api_gateway_stage", config.get("api_gateway_stage", "api"))),
        log_retention_days=int(stage.get("log_retention_in_days", config.get("log_retention_in_days", 0))),
        functions=functions,
        queue_age_alarm_seconds=alarm_seconds,
    )


def emulator_settings(name: str, config: dict[str, Any] | None = None) -> tuple[dict[str, str], int]:
    """(tags, processing-queue visibility timeout) for any stage name, including ad-hoc test stages that
    config.json does not list: those get the top-level settings and Project/Environment tags."""
    config = config or read_config()
    stage = config.get("stages", {}).get(name, {})
    tags = {"Project": config["app_name"], "Environment": name, **config.get("tags", {}), **stage.get("tags", {})}
    timeout = _function_settings(config, stage, PROCESSOR).timeout
    return tags, VISIBILITY_TIMEOUT_FACTOR * timeout


# -- the same settings in the two shapes they are used in: AWS API calls and CloudFormation --------------

def lifecycle_rules_api(lifecycle: Lifecycle = LIFECYCLE) -> list[dict[str, Any]]:
    return [{
        "ID": lifecycle.rule_id, "Status": "Enabled", "Filter": {"Prefix": ""},
        "Transitions": [{"Days": lifecycle.infrequent_access_after_days, "StorageClass": "STANDARD_IA"}],
        "Expiration": {"Days": lifecycle.expire_after_days},
        "NoncurrentVersionExpiration": {"NoncurrentDays": lifecycle.noncurrent_versions_expire_after_days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": lifecycle.abort_multipart_after_days},
    }]


def lifecycle_rules_cfn(lifecycle: Lifecycle = LIFECYCLE) -> list[dict[str, Any]]:
    return [{
        "Id": lifecycle.rule_id, "Status": "Enabled", "Prefix": "",
        "Transitions": [{"TransitionInDays": lifecycle.infrequent_access_after_days, "StorageClass": "STANDARD_IA"}],
        "ExpirationInDays": lifecycle.expire_after_days,
        "NoncurrentVersionExpiration": {"NoncurrentDays": lifecycle.noncurrent_versions_expire_after_days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": lifecycle.abort_multipart_after_days},
    }]


def queue_attributes_api(visibility_timeout: int, dead_letter_arn: str | None) -> dict[str, str]:
    """SQS attributes of the processing queue (with dead_letter_arn) or of a dead-letter queue."""
    if dead_letter_arn is None:
        return {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS), "SqsManagedSseEnabled": "true"}
    return {
        "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
        "VisibilityTimeout": str(visibility_timeout),
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
    }


def queue_properties_cfn(stage: Stage, queue_name: str, dead_letter_arn: Any | None) -> dict[str, Any]:
    """AWS::SQS::Queue properties matching queue_attributes_api."""
    if dead_letter_arn is None:
        return {"QueueName": queue_name, "MessageRetentionPeriod": DLQ_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True, "Tags": stage.tag_list()}
    return {
        "QueueName": queue_name,
        "MessageRetentionPeriod": QUEUE_RETENTION_SECONDS,
        "VisibilityTimeout": stage.visibility_timeout,
        "SqsManagedSseEnabled": True,
        "RedrivePolicy": {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT},
        "Tags": stage.tag_list(),
    }


def table_key_api() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(AttributeDefinitions, KeySchema), the same in API calls and CloudFormation."""
    return ([{"AttributeName": n, "AttributeType": "S"} for n, _ in KEY_SCHEMA],
            [{"AttributeName": n, "KeyType": t} for n, t in KEY_SCHEMA])
