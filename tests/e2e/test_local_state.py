"""The local stack as a place to work: it keeps its state across restarts, leaves no process behind however
it is stopped, and refuses to start on a taken port before it provisions anything.

Each test starts its own stacks (the shared session stack keeps no state), from the outside, as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from localrun.control import (
    REPO_ROOT,
    LocalStack,
    child_environment,
    free_port,
    start_local_stack,
    stop_local_stack,
    unique_symbol,
    wait_for,
)

pytestmark = pytest.mark.e2e


def _versions(stack: LocalStack, key: str) -> list[tuple[str, bool]]:
    import boto3  # type: ignore[import-untyped]

    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    listed = s3.list_object_versions(Bucket=stack.bucket, Prefix=key)
    return sorted((v["VersionId"], v["IsLatest"]) for v in listed.get("Versions", []))


def _ready(stack: LocalStack, ingestion_id: str) -> dict[str, Any] | None:
    resp = stack.ingestion(ingestion_id)
    doc = resp.json() if resp.status == 200 else None
    return doc if doc and doc.get("bars") == "ready" else None


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_restart_keeps_bars_ingestions_objects_and_versions(tmp_path: Path) -> None:
    state = tmp_path / "state"
    symbol = unique_symbol("KEEP")
    ticks = [{"symbol": symbol, "price": p, "volume": 1, "timestamp": f"2026-11-30T10:0{i}:00Z"}
             for i, p in enumerate((10, 11, 9))]
    csv_v1 = tmp_path / "v1.csv"
    csv_v1.write_text(f"symbol,price,volume,timestamp\n{symbol},20,2,2026-11-30T11:00:00Z\n")
    csv_v2 = tmp_path / "v2.csv"
    csv_v2.write_text(f"symbol,price,volume,timestamp\n{symbol},21,3,2026-11-30T11:00:10Z\n")
    key = f"incoming/{symbol.lower()}.csv"

    first = start_local_stack(tmp_path / "first.log", state_dir=state)
    try:
        posted = first.post_ingest(ticks)
        assert posted.status == 202, posted.body
        api_id = posted.json()["ingestion_id"]
        first.s3_cp(csv_v1, key)
        first.s3_cp(csv_v2, key)
        s3_id = first.s3_ingestion_id(key)
        wait_for(lambda: _ready(first, api_id), 60, "the posted ticks' bars")
        wait_for(lambda: _ready(first, s3_id), 60, "the uploaded file's bars")
        bars = {i: first.bars(symbol, i) for i in ("1m", "1h")}
        ingestions = {i: first.ingestion(i).json() for i in (api_id, s3_id)}
        versions = _versions(first, key)
        assert len(versions) == 2
        symbols = first.symbols()
    finally:
        stop_local_stack(first.process)
    assert first.process.returncode == 0
    assert "state saved in" in first.log_tail(2000)

    second = start_local_stack(tmp_path / "second.log", state_dir=state)
    try:
        assert "restored" in second.log_tail(100_000)
        assert _versions(second, key) == versions
        assert second.ingestion(api_id).json() == ingestions[api_id]
        assert second.ingestion(s3_id).json() == ingestions[s3_id]
        assert symbol in second.symbols() and second.symbols() >= symbols
        # Restoring delivers nothing again: after the start-up aggregation and a schedule or two, the bars
        # (revisions included) are those of before the stop.
        time.sleep(5)
        assert {i: second.bars(symbol, i) for i in ("1m", "1h")} == bars
        assert second.ingestion(s3_id).json() == ingestions[s3_id]
        # It keeps working: a new tick lands in the restored bars.
        later = second.post_ingest({"symbol": symbol, "price": 12, "volume": 1,
                                    "timestamp": "2026-11-30T10:02:30Z"})
        assert later.status == 202
        wait_for(lambda: _ready(second, later.json()["ingestion_id"]), 60, "the new tick's bars")
        bar = next(b for b in second.bars(symbol, "1m") if b["start"] == "2026-11-30T10:02:00Z")
        assert (bar["trades"], bar["close"], bar["revision"]) == (2, "12", 2)
    finally:
        stop_local_stack(second.process)


def test_kill_9_of_the_runner_leaves_nothing_running_and_loses_at_most_the_last_seconds(tmp_path: Path) -> None:
    state = tmp_path / "state"
    symbol = unique_symbol("KILL")
    stack = start_local_stack(tmp_path / "killed.log", state_dir=state)
    emulator_port = int(stack.endpoint_url.rsplit(":", 1)[1])
    api_port = int(stack.api_url.rsplit(":", 1)[1])
    try:
        posted = stack.post_ingest({"symbol": symbol, "price": 5, "volume": 7, "timestamp": "2026-11-30T09:00:00Z"})
        wait_for(lambda: _ready(stack, posted.json()["ingestion_id"]), 60, "the bars")
        time.sleep(3)  # longer than the save period (2 s)
    finally:
        os.kill(stack.process.pid, signal.SIGKILL)  # the runner alone, not its children's sessions
        stack.process.wait(timeout=10)
    wait_for(lambda: _port_free(emulator_port) and _port_free(api_port), 10,
             "the emulator and the API to go with the runner")
    leftovers = subprocess.run(["pgrep", "-f", f"localrun.emulator -H 127.0.0.1 -p {emulator_port}"],
                               capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""

    again = start_local_stack(tmp_path / "again.log", state_dir=state)
    try:
        assert [b["volume"] for b in again.bars(symbol, "1m")] == ["7"]
    finally:
        stop_local_stack(again.process)


def _start_raw(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localrun", *args], cwd=REPO_ROOT, env=child_environment(),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("which", ["emulator", "api"])
def test_a_taken_port_ends_the_start_before_anything_is_provisioned(tmp_path: Path, which: str) -> None:
    emulator_port, api_port = free_port(), free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", emulator_port if which == "emulator" else api_port))
        holder.listen()
        done = _start_raw(["--emulator-port", str(emulator_port), "--api-port", str(api_port),
                           "--state-dir", str(tmp_path / "state")], tmp_path)
    taken = emulator_port if which == "emulator" else api_port
    option = "--emulator-port" if which == "emulator" else "--api-port"
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {taken}" in lines[0] and option in lines[0], done.stderr
    assert "Market-data pipeline running locally" not in done.stdout
    assert not (tmp_path / "state").exists()  # nothing started, nothing written
    other = api_port if which == "emulator" else emulator_port
    assert _port_free(other)


def test_state_of_another_layout_is_refused_with_a_message(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "manifest.json").write_text(json.dumps({"layout": 0, "moto": "0.0", "generation": 1, "services": {}}))
    done = _start_raw(["--emulator-port", str(free_port()), "--api-port", str(free_port()),
                       "--state-dir", str(state)], tmp_path)
    assert done.returncode != 0
    assert "another layout" in done.stderr and "--fresh" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout

    fresh = start_local_stack(tmp_path / "fresh.log", state_dir=state, extra_args=("--fresh",))
    try:
        assert fresh.symbols() == set()
    finally:
        stop_local_stack(fresh.process)
    assert [p.name for p in tmp_path.glob("state.old-*")], "the refused state is moved aside, not deleted"


def test_ctrl_c_stops_quietly(tmp_path: Path) -> None:
    stack = start_local_stack(tmp_path / "quiet.log", state_dir=tmp_path / "state")
    symbol = unique_symbol("QUIET")
    for n in range(20):  # work in flight while it stops
        stack.post_ingest({"symbol": symbol, "price": 1 + n, "volume": 1})
    before = len(stack.log_tail(10_000_000))
    stop_local_stack(stack.process)
    tail = stack.log_path.read_text(errors="replace")[before:]
    assert stack.process.returncode == 0
    assert "Traceback" not in tail and "driver step failed" not in tail, tail[-3000:]
    assert tail.strip().splitlines()[-1].startswith("stopped; state saved in")


def test_kill_9_of_make_run_stops_everything(tmp_path: Path) -> None:
    if subprocess.run(["make", "--version"], capture_output=True).returncode != 0:
        pytest.skip("make is not installed")
    emulator_port, api_port = free_port(), free_port()
    log = open(tmp_path / "make.log", "wb")  # noqa: SIM115 - closed after the process starts
    make = subprocess.Popen(
        ["make", "run", f"ARGS=--ephemeral --emulator-port {emulator_port} --api-port {api_port}"],
        cwd=REPO_ROOT, env=child_environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        wait_for(lambda: "Ctrl-C stops everything." in (tmp_path / "make.log").read_text(errors="replace"), 90,
                 "make run to start")
    finally:
        os.kill(make.pid, signal.SIGKILL)
        make.wait(timeout=10)
    wait_for(lambda: _port_free(emulator_port) and _port_free(api_port), 30, "everything to stop with make")
    leftovers = subprocess.run(["pgrep", "-f", f"--emulator-port {emulator_port}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_a_second_stack_on_the_same_state_folder_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_local_stack(tmp_path / "first.log", state_dir=state)
    try:
        done = _start_raw(["--emulator-port", str(free_port()), "--api-port", str(free_port()),
                           "--state-dir", str(state)], tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "in use by another local stack" in lines[0] and "--state-dir" in lines[0]
        assert first.symbols() == set()  # the first one goes on, untouched
    finally:
        stop_local_stack(first.process)
