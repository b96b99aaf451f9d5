"""Shared test setup: make the repository root importable (chalicelib, tests.fakes) however pytest is run."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# moto in-process runs Query and TransactWriteItems as the local stack's emulator does (localrun/moto_fixes.py).
from localrun import moto_fixes  # noqa: E402

moto_fixes.install()
