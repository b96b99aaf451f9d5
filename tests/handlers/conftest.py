"""Handler tests: the Chalice app through chalice.test.Client, on moto in-process, stage dev's settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.moto_stack import ROOT, moto_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from chalice.test import Client

    with moto_stack(monkeypatch) as resources, \
            Client(resources["app"].app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield {"client": client, **resources}
