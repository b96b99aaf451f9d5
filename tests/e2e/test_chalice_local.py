"""`chalice local` the way Chalice users run it: against the emulator started by `make emulator` (the command
its banner prints, run verbatim), and, started with no emulator configured, a clear answer saying what to run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from localrun.control import (
    READY_BANNER,
    REPO_ROOT,
    LocalStack,
    child_environment,
    free_port,
    stop_local_stack,
    unique_symbol,
    wait_for,
)

pytestmark = pytest.mark.e2e


def _wait_text(path: Path, text: str, process: subprocess.Popen, timeout: float = 60) -> str:
    def found() -> str | None:
        assert process.poll() is None, path.read_text(errors="replace")[-3000:]
        content = path.read_text(errors="replace")
        return content if text in content else None

    return wait_for(found, timeout, f"{text!r} in {path.name}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_chalice_local_runs_against_make_emulator_with_the_printed_command(tmp_path: Path) -> None:
    emulator_port, api_port = free_port(), free_port()
    log = tmp_path / "emulator.log"
    with open(log, "wb") as out:
        runner = subprocess.Popen([sys.executable, "-m", "localrun", "--no-api", "--ephemeral",
                                   "--emulator-port", str(emulator_port), "--api-port", str(api_port),
                                   "--schedule-seconds", "2"],
                                  cwd=REPO_ROOT, env=child_environment(), stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    chalice = None
    try:
        banner = _wait_text(log, "Ctrl-C stops everything.", runner)
        banner = banner[banner.index(READY_BANNER):]
        assert "not served (--no-api)" in banner
        printed = re.search(r"in another terminal:\n(.*?chalice local[^\n]*)", banner, re.S)
        assert printed, banner
        command = re.sub(r"\\\n\s*", "", printed.group(1)).strip()
        env = {k: v for k, v in child_environment().items() if not k.startswith("AWS_")}
        chalice_log = open(tmp_path / "chalice.log", "wb")  # noqa: SIM115 - closed after the process
        chalice = subprocess.Popen(["bash", "-c", command], cwd=REPO_ROOT, env=env, stdout=chalice_log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        chalice_log.close()
        api = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: _answers(api + "/symbols"), 60, "chalice local to answer")
        stack = LocalStack(api_url=api, endpoint_url=f"http://127.0.0.1:{emulator_port}",
                           bucket="market-data-bucket-dev", process=chalice, log_path=tmp_path / "chalice.log")
        symbol = unique_symbol("CL")
        posted = stack.post_ingest({"symbol": symbol, "price": 3, "volume": 2})
        assert posted.status == 202, posted.body
        assert posted.json()["status_url"].startswith(api)
        # The emulator's driver delivers what chalice local queued.
        wait_for(lambda: stack.bars(symbol), 60, "the bars")
    finally:
        if chalice is not None:
            os.killpg(chalice.pid, signal.SIGTERM)  # bash and the chalice local it started
            chalice.wait(timeout=10)
        stop_local_stack(runner)


def test_chalice_local_with_no_emulator_says_what_to_run(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in child_environment().items() if not k.startswith("AWS_")}
    log = open(tmp_path / "chalice.log", "wb")  # noqa: SIM115 - closed after the process
    chalice = subprocess.Popen([str(Path(sys.executable).parent / "chalice"), "local", "--stage", "dev", "--port",
                                str(port), "--no-autoreload"], cwd=REPO_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        url = f"http://127.0.0.1:{port}/symbols"
        wait_for(lambda: _answers(url), 60, "chalice local to answer")
        stack = LocalStack(api_url=f"http://127.0.0.1:{port}", endpoint_url="", bucket="", process=chalice,
                           log_path=tmp_path / "chalice.log")
        started = time.monotonic()
        for path in ("/symbols", "/bars?symbol=AAPL"):
            resp = stack.request("GET", path)
            assert resp.status == 503, resp.body
            body = resp.json()
            assert body["error"] == "AwsUnreachable"
            assert "make emulator" in body["message"] and "AWS_ENDPOINT_URL" in body["message"]
        assert time.monotonic() - started < 30
    finally:
        chalice.terminate()
        chalice.wait(timeout=10)
