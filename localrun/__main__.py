"""`python -m localrun`: start the emulator, provision the stage, serve the API, deliver events. Ctrl-C stops."""

from __future__ import annotations

import argparse
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

from .stage import LOCAL_CREDENTIALS, PROJECT_ROOT, stage_environment

TRUE_VALUES = ("1", "true", "yes", "on")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer on {url} within {timeout:.0f}s")


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
    parser.add_argument("--processor-threads", type=int, default=int(env.get("PROCESSOR_THREADS", "2")),
                        help="concurrent processor invocations (env PROCESSOR_THREADS, default 2)")
    parser.add_argument("--require-sigv4", action="store_true",
                        default=env.get("REQUIRE_SIGV4", "").strip().lower() in TRUE_VALUES,
                        help="require AWS SigV4 (service execute-api, the emulator's credentials) on every API "
                             "request, as API Gateway's IAM authorization does (env REQUIRE_SIGV4=1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    endpoint = f"http://{args.host}:{args.emulator_port}"
    api_url = f"http://{args.host}:{args.api_port}"
    os.environ.update(stage_environment(args.stage, endpoint))
    os.environ["API_BASE_URL"] = api_url  # the status_url of POST /ingest
    bin_dir = Path(sys.executable).parent
    processes: list[subprocess.Popen] = []
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    driver = None
    proxy = None
    try:
        moto = subprocess.Popen(
            [sys.executable, "-m", "localrun.emulator", "-H", args.host, "-p", str(args.emulator_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=PROJECT_ROOT,
        )
        processes.append(moto)
        _wait_http(f"{endpoint}/moto-api/", moto, "the AWS emulator (moto)")

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

        # With --require-sigv4, chalice local (which ignores IAM authorizers) moves to an internal port and
        # a verifying proxy takes the API port.
        chalice_port = _free_port(args.host) if args.require_sigv4 else args.api_port
        chalice = subprocess.Popen(
            [str(bin_dir / "chalice"), "local", "--host", args.host, "--port", str(chalice_port),
             "--stage", args.stage, "--no-autoreload"],
            cwd=PROJECT_ROOT, env=os.environ.copy(),
        )
        processes.append(chalice)
        _wait_http(f"http://{args.host}:{chalice_port}/symbols", chalice, "chalice local")
        if args.require_sigv4:
            from .sigv4_proxy import Secret, start_proxy

            keys = {LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]: Secret(LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                                                   LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"])}
            proxy = start_proxy(args.host, args.api_port, (args.host, chalice_port), keys, settings.region)

        driver = Driver(app_module, session, settings.region, names["queue_url"], names["events_queue_url"],
                        settings.report_batch_item_failures, args.schedule_seconds, args.processor_threads)
        driver.start()
        bucket = settings.bucket_name
        key, secret = LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"], LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        if args.require_sigv4:
            curl = f"awscurl --service execute-api --region {settings.region} --access_key {key} --secret_key {secret}"
            auth = (f"\n  API auth        AWS SigV4 required (service execute-api, region {settings.region}, "
                    f"access key {key}, secret {secret});\n"
                    f"                  unsigned or wrongly signed requests get 403, as with API Gateway IAM auth")
        else:
            curl, auth = "curl", ""
        print(f"""
Market-data pipeline running locally (stage {args.stage})
  REST API        {api_url}{auth}
  AWS emulator    {endpoint}
  bucket          {bucket}
  table           {settings.table_name}
  schedule        aggregator every {args.schedule_seconds:g}s (and on every TicksProcessed event)

Try:
  {curl} -X POST {api_url}/ingest -H 'Content-Type: application/json' \\
       -d '{{"symbol":"AAPL","price":150.25,"volume":1000000}}'
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \\
       aws s3 cp trades.csv s3://{bucket}/incoming/trades.csv --endpoint-url {endpoint}
  {curl} '{api_url}/bars?symbol=AAPL&interval=1m'
  {curl} '{api_url}/symbols'
  AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
       python -m chalicelib.cli --stage {args.stage} dlq list      (operator commands: --help)

Ctrl-C stops everything.
""", flush=True)
        while not stop.wait(0.5):
            for process in processes:
                if process.poll() is not None:
                    print(f"a component exited (code {process.returncode}); stopping", file=sys.stderr)
                    stop.set()
        return 0
    finally:
        if proxy is not None:
            proxy.stop()
        if driver is not None:
            driver.stop()
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
