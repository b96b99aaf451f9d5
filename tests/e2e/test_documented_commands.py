"""The commands a user is shown run as written: those of the banner of `make run` verbatim, and those of the
README's "Using it locally" (with the stack's ports in place of 5000 and 8000), from the project's folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from localrun.control import READY_BANNER, REPO_ROOT, LocalStack, child_environment, wait_for

pytestmark = pytest.mark.e2e


def _commands(text: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comments and explanation lines dropped."""
    joined = re.sub(r"\\\n\s*", "", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "(", "chart:")):
            continue
        out.append(line)
    return out


def _banner_commands(stack: LocalStack) -> list[str]:
    log = stack.log_tail(1_000_000)
    banner = log[log.index(READY_BANNER):]
    block = banner[banner.index("Try:") + len("Try:"):banner.index("Ctrl-C stops everything.")]
    return _commands(block)


def _readme_commands(stack: LocalStack) -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Using it locally"):]
    block = section[section.index("```sh\n") + 6:section.index("```\n", section.index("```sh\n") + 6)]
    emulator_port = stack.endpoint_url.rsplit(":", 1)[1]
    api_port = stack.api_url.rsplit(":", 1)[1]
    block = block.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}").replace("127.0.0.1:5000",
                                                                            f"127.0.0.1:{emulator_port}")
    # `make local-cli` takes the emulator's port as a variable; the README's uses the default one.
    block = block.replace("make local-cli ", f"make local-cli EMULATOR_PORT={emulator_port} ")
    return _commands(block)


def _run(commands: list[str], tmp_path: Path) -> list[tuple[str, subprocess.CompletedProcess]]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    # One shell for the block, as a user's terminal: an `export` holds for the commands after it.
    results = []
    env = {k: v for k, v in child_environment().items() if not k.startswith("AWS_")}
    exports = ""
    for command in commands:
        if command.startswith("export "):
            exports += command + "\n"
            continue
        done = subprocess.run(["bash", "-c", exports + command], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"{command!r} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        results.append((command, done))
    return results


def _bars(stack: LocalStack, symbol: str) -> list[dict]:
    return stack.bars(symbol, "1m", start="2021-04-17T00:00:00Z")


def test_the_banner_commands_run_as_printed(stack: LocalStack, tmp_path: Path) -> None:
    commands = _banner_commands(stack)
    assert any(c.startswith("curl -X POST") for c in commands)
    assert any("aws s3 cp examples/" in c for c in commands)
    assert any(c.startswith("make local-cli") for c in commands)
    results = _run(commands, tmp_path)
    posted = [json.loads(r.stdout) for c, r in results if c.startswith("curl -X POST")]
    assert all(p["status"] == "queued" for p in posted)
    wait_for(lambda: _bars(stack, "SUSHIUSDT"), 60, "the uploaded example's bars")
    wait_for(lambda: _bars(stack, "SKL-USD"), 60, "the posted example's bars")


def test_the_readme_commands_run_as_written(stack: LocalStack, tmp_path: Path) -> None:
    commands = _readme_commands(stack)
    assert len(commands) >= 8
    _run(commands, tmp_path)
    wait_for(lambda: _bars(stack, "DASH-BTC"), 60, "the NDJSON example's bars")
    wait_for(lambda: _bars(stack, "CTKUSDT"), 60, "the CSV example's bars")
