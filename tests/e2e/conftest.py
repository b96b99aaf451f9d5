"""Fixtures of the end-to-end tests: the local stack (`python -m localrun` on free ports), once per session.

Tests reach it only from the outside (see localrun/control.py). They share one stack, so each test uses symbols
of its own: the ``symbol`` fixture, or ``unique_symbol``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from localrun.control import LocalStack, running_local_stack, unique_symbol


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with tempfile.TemporaryDirectory(prefix="e2e-localrun-") as tmp:
        log_path = Path(tmp) / "localrun.log"
        try:
            with running_local_stack(log_path) as running:
                yield running
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        finally:
            keep = os.environ.get("E2E_LOG_FILE")  # keep the stack's whole log for a look afterwards
            if keep:
                shutil.copyfile(log_path, keep)


@pytest.fixture
def symbol(request: pytest.FixtureRequest) -> str:
    """A fresh symbol for the test, so tests sharing the stack never see each other's bars."""
    name = "".join(ch for ch in request.node.name.upper() if ch.isalnum())
    return unique_symbol(name.removeprefix("TEST")[:14] or "E2E")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, None]:
    """On failure, show the end of the stack's log (API, driver and handler output) under the test."""
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(running, LocalStack):
        report.sections.append(("localrun log (tail)", running.log_tail(8000)))
