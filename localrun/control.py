"""Driving the local stack from the outside: start `python -m localrun` on free ports, then talk to it
over HTTP (urllib) and `aws s3 cp` (awscli), as a user would. Used by the end-to-end tests and the benchmark.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chalicelib.domain.ingestion import object_ingestion_id, real_version
from chalicelib.settings import resource_names

from .stage import PROJECT_ROOT

REPO_ROOT = PROJECT_ROOT
BUCKET = resource_names("dev")["BUCKET_NAME"]
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
STARTUP_TIMEOUT_S = 60
SCHEDULE_SECONDS = 2
READY_BANNER = "Market-data pipeline running locally"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_symbol(prefix: str) -> str:
    """A symbol no other test (or earlier run against the same stack) uses; at most 32 characters."""
    return f"{prefix}.{uuid.uuid4().hex[:8]}".upper()[:32]


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without anything that would point AWS clients elsewhere, plus test credentials."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MOTO_")) and k not in ("STAGE", "EMULATOR_PORT", "API_PORT")}
    env.update(AWS_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LocalStack:
    """A running `python -m localrun`, and what a test needs to talk to it."""

    api_url: str
    endpoint_url: str
    bucket: str
    process: subprocess.Popen
    log_path: Path
    _s3: Any = field(default=None, repr=False)

    # ---------------------------------------------------------------- HTTP
    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60) -> Response:
        if self.process.poll() is not None:
            raise RuntimeError(f"localrun has exited (code {self.process.returncode}):\n{self.log_tail()}")
        url = path if path.startswith("http") else self.api_url + path
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())

    def get(self, path: str, **params: Any) -> Response:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self.request("GET", path + (f"?{query}" if query else ""))

    def post_ingest(self, body: bytes | str | Any, content_type: str = "application/json",
                    idempotency_key: str | None = None) -> Response:
        """POST /ingest. A str or bytes body goes as is; anything else is sent as JSON."""
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        headers = {"Content-Type": content_type}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self.request("POST", "/ingest", data, headers)

    def bars(self, symbol: str, interval: str = "1m", **params: Any) -> list[dict[str, Any]]:
        """Every bar of a symbol and interval, following the `next` cursor."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            resp = self.get("/bars", symbol=symbol, interval=interval, limit=5000, next=cursor, **params)
            assert resp.status == 200, (resp.status, resp.body[:500])
            page = resp.json()
            out.extend(page["bars"])
            cursor = page["next"]
            if not cursor:
                return out

    def symbols(self) -> set[str]:
        resp = self.get("/symbols")
        assert resp.status == 200, (resp.status, resp.body[:500])
        return {s["symbol"] for s in resp.json()["symbols"]}

    def ingestion(self, ingestion_id: str) -> Response:
        return self.get(f"/ingestions/{urllib.parse.quote(ingestion_id)}")

    def wait_processed(self, ingestion_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll GET /ingestions/{id} until every chunk is processed (or the file was rejected)."""
        def done() -> dict[str, Any] | None:
            resp = self.ingestion(ingestion_id)
            if resp.status != 200:
                return None
            doc = resp.json()
            return doc if doc["status"] in ("processed", "rejected", "failed") else None

        return wait_for(done, timeout, f"ingestion {ingestion_id} to be processed")

    # ---------------------------------------------------------------- S3 through awscli
    def s3_cp(self, local_path: Path | str, key: str, metadata: dict[str, str] | None = None,
              extra_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """`aws s3 cp FILE s3://bucket/KEY` against the emulator; fails the test if awscli fails."""
        cmd = [aws_executable(), "s3", "cp", str(local_path), f"s3://{self.bucket}/{key}",
               "--endpoint-url", self.endpoint_url, "--only-show-errors", *extra_args]
        if metadata:
            cmd += ["--metadata", json.dumps(metadata)]  # the JSON form: values may hold commas
        done = subprocess.run(cmd, env=child_environment(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"aws s3 cp failed ({done.returncode}): {done.stderr}"
        return done

    def s3_ingestion_id(self, key: str) -> str:
        """The id the pipeline gives an object version: 's3-' + sha256('bucket/key#version')[:32]."""
        if self._s3 is None:
            import boto3  # type: ignore[import-untyped]

            self._s3 = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                                    aws_access_key_id="testing", aws_secret_access_key="testing")
        head = self._s3.head_object(Bucket=self.bucket, Key=key)
        return object_ingestion_id(self.bucket, key, real_version(head.get("VersionId")) or head["ETag"].strip('"'))

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def wait_for(condition: Callable[[], T | None], timeout: float = 30, what: str = "the condition",
             interval: float = 0.25) -> T:
    """Call ``condition`` until it returns something truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = condition()
        except AssertionError as exc:  # a condition may assert to explain what is still missing
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {str(last)[:2000]}")
        time.sleep(interval)


def aws_executable() -> str:
    """awscli from the interpreter's own environment (the project's virtualenv), else from PATH."""
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return str(beside)
    found = shutil.which("aws")
    if found is None:
        raise RuntimeError("awscli is not installed (expected next to the interpreter or on PATH)")
    return found


def stop_local_stack(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        # localrun did not stop its children in time: end the process group it leads (ours alone).
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start_local_stack(log_path: Path, schedule_seconds: float = SCHEDULE_SECONDS,
                      extra_env: dict[str, str] | None = None,
                      timeout: float = STARTUP_TIMEOUT_S, extra_args: tuple[str, ...] = (),
                      ready_statuses: tuple[int, ...] = (200,), state_dir: Path | None = None,
                      ports: tuple[int, int] | None = None) -> LocalStack:
    """Start `python -m localrun` on free ports and wait until the API answers and the driver runs.

    ``extra_args`` go to localrun's command line; GET /symbols answering one of ``ready_statuses`` means
    ready (e.g. 403 as well with --require-sigv4, where this module's unsigned request is refused). The stack
    keeps no state unless ``state_dir`` is given; ``ports`` (emulator, API) are free ones unless given.
    """
    if ports is not None:
        emulator_port, api_port = ports
    else:
        emulator_port, api_port = free_port(), free_port()
        while api_port == emulator_port:
            api_port = free_port()
    state_args = ("--state-dir", str(state_dir)) if state_dir is not None else ("--ephemeral",)
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes to it for the whole session
    process = subprocess.Popen(
        [sys.executable, "-m", "localrun", "--emulator-port", str(emulator_port), "--api-port", str(api_port),
         "--schedule-seconds", str(schedule_seconds), *state_args, *extra_args],
        cwd=REPO_ROOT, env=child_environment(extra_env), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    stack = LocalStack(api_url=f"http://127.0.0.1:{api_port}", endpoint_url=f"http://127.0.0.1:{emulator_port}",
                       bucket=BUCKET, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"localrun exited with code {process.returncode} while starting:\n{stack.log_tail()}")
        if READY_BANNER in stack.log_tail(100_000):
            try:
                if stack.get("/symbols").status in ready_statuses:
                    return stack
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
        if time.monotonic() > deadline:
            stop_local_stack(process)
            raise RuntimeError(f"localrun was not ready within {timeout:.0f}s:\n{stack.log_tail()}")
        time.sleep(0.2)


@contextmanager
def running_local_stack(log_path: Path, **options: Any) -> Iterator[LocalStack]:
    """start_local_stack(log_path, **options) for the length of a with block; always stopped after."""
    stack = start_local_stack(log_path, **options)
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)
