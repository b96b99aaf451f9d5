"""`python -m localrun`: start the emulator, provision the stage, serve the API, deliver events. Ctrl-C stops.

The state (objects with their versions, the table, the queues) is kept in .local-state/<stage>/ and restored
at the next start; --fresh starts empty (the old folder is moved aside), --ephemeral keeps nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from infra.definitions import load_stage

from .stage import LOCAL_CREDENTIALS, PROJECT_ROOT, stage_environment

TRUE_VALUES = ("1", "true", "yes", "on")
STATE_ROOT = PROJECT_ROOT / ".local-state"
EMULATOR_STOP_TIMEOUT_S = 120  # its last save: a big table takes a few seconds
_PR_SET_PDEATHSIG = 1


def _child_setup() -> Any:
    """What a child runs before exec: its own session (a terminal's Ctrl-C reaches only the runner, which stops
    the children in order), and SIGTERM when the runner dies, however it dies (Linux only: elsewhere a child
    outlives a runner killed with SIGKILL)."""
    runner = os.getpid()

    def setup() -> None:
        os.setsid()
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return
        if os.getppid() != runner:  # the runner died before prctl took effect
            os._exit(1)

    return setup


def _stop_with_make() -> None:
    """Under `make run`, the process a user started (and may kill) is make: stop when it dies, as with Ctrl-C."""
    try:
        parent = Path(f"/proc/{os.getppid()}/comm").read_text().strip()
    except OSError:
        return
    if parent in ("make", "gmake"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no clash
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def check_state_folder(state: Path) -> str | None:
    """One line if another local stack holds the state folder (the emulator holds it while it runs)."""
    import fcntl

    lock = state / "lock"
    if not lock.exists():
        return None
    with open(lock, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "?"
            return (f"{_shown(state)} is in use by another local stack (pid {holder}); stop it, or give this one "
                    "another folder (--state-dir DIR) or none (--ephemeral)")
        fcntl.flock(file, fcntl.LOCK_UN)
    return None


def check_ports(host: str, wanted: list[tuple[int, str, str]]) -> str | None:
    """The first port (of (port, what, option)) that something else holds, as one line; None if all are free."""
    seen: dict[int, str] = {}
    for port, what, option in wanted:
        if port in seen:
            return f"the {what} and the {seen[port]} cannot share port {port}; choose another with {option} N"
        seen[port] = what
        if _port_in_use(host, port):
            return (f"port {port} on {host} is in use (wanted for the {what}); stop what holds it or choose another "
                    f"port with {option} N (with make: ARGS='{option} N')")
    return None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class StartFailed(Exception):
    """A component did not start; the message says which and why."""


def _wait_http(url: str, process: subprocess.Popen, what: str, stop: threading.Event, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop.is_set():
            raise StartFailed("stopped while starting")
        if process.poll() is not None:
            raise StartFailed(f"{what} exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.2)
    raise StartFailed(f"{what} did not answer on {url} within {timeout:.0f}s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m localrun", description=__doc__)
    parser.add_argument("--stage", default=env.get("STAGE", "dev"), help="stage in .chalice/config.json (env STAGE)")
    parser.add_argument("--host", default=env.get("HOST", "127.0.0.1"), help="address to bind (env HOST)")
    parser.add_argument("--emulator-port", type=int, default=int(env.get("EMULATOR_PORT", "5000")),
                        help="port of the AWS emulator (env EMULATOR_PORT, default 5000)")
    parser.add_argument("--api-port", type=int, default=int(env.get("API_PORT", "8000")),
                        help="port of the REST API (env API_PORT, default 8000)")
    parser.add_argument("--schedule-seconds", type=float, default=float(env.get("SCHEDULE_SECONDS", "300")),
                        help="period of the scheduled aggregator (env SCHEDULE_SECONDS, default 300)")
    parser.add_argument("--processor-threads", type=int,
                        default=int(env["PROCESSOR_THREADS"]) if env.get("PROCESSOR_THREADS") else None,
                        help="concurrent processor invocations (env PROCESSOR_THREADS; default: the stage's SQS "
                             "trigger maximum concurrency, sqs_maximum_concurrency in .chalice/config.json)")
    parser.add_argument("--require-sigv4", action="store_true",
                        default=env.get("REQUIRE_SIGV4", "").strip().lower() in TRUE_VALUES,
                        help="require AWS SigV4 (service execute-api, the emulator's credentials) on every API "
                             "request, as API Gateway's IAM authorization does (env REQUIRE_SIGV4=1)")
    parser.add_argument("--state-dir", type=Path, default=env.get("LOCAL_STATE_DIR"),
                        help="where the emulator keeps its state (env LOCAL_STATE_DIR, default .local-state/STAGE)")
    parser.add_argument("--fresh", action="store_true",
                        help="start empty: the state folder is moved aside (to STATE_DIR.old-<time>), not deleted")
    parser.add_argument("--ephemeral", action="store_true",
                        help="keep no state: start empty and forget everything at the stop")
    parser.add_argument("--save-seconds", type=float, default=float(env.get("SAVE_SECONDS", "2")),
                        help="the emulator saves what changed this often (env SAVE_SECONDS, default 2)")
    parser.add_argument("--no-api", action="store_true",
                        help="start the emulator and the driver only, to run `chalice local` yourself "
                             "(make emulator); the banner prints the command")
    return parser.parse_args(argv)


def _state_dir(args: argparse.Namespace) -> Path | None:
    if args.ephemeral:
        return None
    return Path(args.state_dir) if args.state_dir else STATE_ROOT / args.stage


def _banner(args: argparse.Namespace, settings: Any, endpoint: str, api_url: str, state: Path | None) -> str:
    region = settings.region
    bin_dir = _shown(Path(sys.executable).parent)
    key, secret = LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"], LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    aws_env = f"AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={region}"
    if args.require_sigv4:
        curl = f"curl --aws-sigv4 aws:amz:{region}:execute-api --user {key}:{secret}"
        auth = (f"\n  API auth        AWS SigV4 required (service execute-api, region {region}, "
                f"access key {key}, secret {secret});\n"
                f"                  unsigned or wrongly signed requests get 403, as with API Gateway IAM auth")
    else:
        curl, auth = "curl", ""
    kept = (f"kept in {_shown(state)} (restored at the next start; --fresh starts empty)" if state
            else "not kept (--ephemeral)")
    if args.no_api:
        api_line = ("  REST API        not served (--no-api); in another terminal:\n"
                    f"                  AWS_ENDPOINT_URL={endpoint} {aws_env} API_BASE_URL={api_url} \\\n"
                    f"                  {bin_dir}/chalice local --stage {args.stage} --port {args.api_port}")
    else:
        api_line = f"  REST API        {api_url}{auth}"
    cli_port = "" if args.emulator_port == 5000 else f" EMULATOR_PORT={args.emulator_port}"
    stage = "" if args.stage == "dev" else f" STAGE={args.stage}"
    return f"""
Market-data pipeline running locally (stage {args.stage})
{api_line}
  AWS emulator    {endpoint}
  bucket          {settings.bucket_name}
  table           {settings.table_name}
  state           {kept}
  schedule        aggregator every {args.schedule_seconds:g}s (and on every TicksProcessed event)

Try:
  {curl} -X POST {api_url}/ingest -H 'Content-Type: application/json' \\
       -d '{{"symbol":"AAPL","price":150.25,"volume":100}}'
  {curl} -X POST {api_url}/ingest -H 'Content-Type: application/json' --data-binary @examples/coinbase-skl-usd.json
  {aws_env} \\
       {bin_dir}/aws s3 cp examples/binance-futures-aggtrades.csv s3://{settings.bucket_name}/incoming/ \\
       --endpoint-url {endpoint}
  {curl} '{api_url}/bars?symbol=AAPL&interval=1m'
  {curl} '{api_url}/bars?symbol=SUSHIUSDT&interval=1m&start=2021-07-22T00:00:00Z'
  {curl} '{api_url}/symbols'
  make local-cli{cli_port}{stage} ARGS='dlq list'
       (the operator's commands against this stack: ARGS=--help)
  chart: {api_url}/chart?symbol=SKL-USD&interval=1m

Ctrl-C stops everything.
"""


def _shown(path: Path) -> str:
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _stop_process(process: subprocess.Popen, timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    endpoint = f"http://{args.host}:{args.emulator_port}"
    api_url = f"http://{args.host}:{args.api_port}"
    wanted = [(args.emulator_port, "AWS emulator", "--emulator-port")]
    if not args.no_api:  # with --no-api, the API port is the user's own chalice local's
        wanted.append((args.api_port, "REST API", "--api-port"))
    state = _state_dir(args)
    clash = check_ports(args.host, wanted) or (check_state_folder(state) if state is not None else None)
    if clash:
        print(clash, file=sys.stderr, flush=True)
        return 2
    if state is not None and args.fresh:
        from .persistence import move_aside

        moved = move_aside(state)
        if moved is not None:
            print(f"--fresh: the previous state is now in {_shown(moved)}", flush=True)
    os.environ.update(stage_environment(args.stage, endpoint))
    os.environ["API_BASE_URL"] = api_url  # the status_url of POST /ingest
    processes: list[tuple[str, subprocess.Popen]] = []
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGHUP, shutdown)
    _stop_with_make()
    driver = None
    proxy = None
    outcome = "stopped"
    try:
        command = [sys.executable, "-m", "localrun.emulator", "-H", args.host, "-p", str(args.emulator_port),
                   "--region", os.environ["AWS_DEFAULT_REGION"], "--save-seconds", str(args.save_seconds)]
        if state is not None:
            command += ["--state-dir", str(state)]
        moto = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=PROJECT_ROOT,
                                preexec_fn=_child_setup())  # only os and prctl calls before exec
        processes.append(("emulator", moto))
        _wait_http(f"{endpoint}/moto-api/", moto, "the AWS emulator (moto)", stop)

        import boto3

        sys.path.insert(0, str(PROJECT_ROOT))
        app_module = importlib.import_module("app")
        from chalice.app import CloudWatchEventConfig

        from chalicelib.settings import get_settings

        from .driver import Driver
        from .provision import provision

        settings = get_settings()
        session = boto3.session.Session()
        patterns = {s.name: s.event_pattern for s in app_module.app.event_sources
                    if isinstance(s, CloudWatchEventConfig)}
        names = provision(settings, patterns, session)

        if not args.no_api:
            # With --require-sigv4, chalice local (which ignores IAM authorizers) moves to an internal port and
            # a verifying proxy takes the API port.
            chalice_port = _free_port(args.host) if args.require_sigv4 else args.api_port
            chalice = subprocess.Popen(
                [sys.executable, "-m", "localrun.chalice_local", "--host", args.host, "--port", str(chalice_port),
                 "--stage", args.stage, "--no-autoreload"],
                cwd=PROJECT_ROOT, env=os.environ.copy(), preexec_fn=_child_setup(),
            )
            processes.append(("chalice local", chalice))
            _wait_http(f"http://{args.host}:{chalice_port}/symbols", chalice, "chalice local", stop)
            if args.require_sigv4:
                from .sigv4_proxy import Secret, start_proxy

                keys = {LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]: Secret(LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                                                       LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"])}
                proxy = start_proxy(args.host, args.api_port, (args.host, chalice_port), keys, settings.region,
                                max_body_bytes=settings.max_body_bytes)

        driver = Driver(app_module, session, settings.region, names["queue_url"], names["events_queue_url"],
                        settings.report_batch_item_failures, args.schedule_seconds,
                        args.processor_threads or load_stage(args.stage).processor_maximum_concurrency,
                        schedule_at_start=True)
        driver.start()
        print(_banner(args, settings, endpoint, api_url, state), flush=True)
        while not stop.wait(0.5):
            for what, process in processes:
                if process.poll() is not None:
                    print(f"{what} exited (code {process.returncode}); stopping", file=sys.stderr, flush=True)
                    outcome = f"stopped because {what} exited"
                    stop.set()
        return 0 if outcome == "stopped" else 1
    except StartFailed as exc:
        outcome = f"not started: {exc}"
        return 1
    finally:
        # Stop in order: nothing new comes in, invocations finish, then the emulator saves and exits.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if proxy is not None:
            proxy.stop()
        if driver is not None:
            driver.stop()
        for what, process in reversed(processes):
            _stop_process(process, EMULATOR_STOP_TIMEOUT_S if what == "emulator" else 10)
        emulator = dict(processes).get("emulator")
        if state is not None and emulator is not None and emulator.returncode == 0 and driver is not None:
            outcome += f"; state saved in {_shown(state)}"
        elif state is not None and emulator is not None and emulator.returncode == 4:
            outcome += f"; the last save to {_shown(state)} FAILED (see above): the last seconds' changes are lost"
        print(outcome, flush=True)


if __name__ == "__main__":
    sys.exit(main())
