"""The vendored charting library (vendor/README.md): its source text, read once on first use and checked
before a page inlines it."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
LIBRARY_NAME = "lightweight-charts"
LIBRARY_VERSION = "5.2.1"
LIBRARY_FILE = "lightweight-charts.standalone.production.js"
LIBRARY_SHA256 = "e21cc5caa0226ef30bd8549c50b9ef926615f2a4ee6b4e486353477a55f598cf"
# Text that would end or confuse an inline <script> element, or that an HTML parser would rewrite (a carriage
# return becomes a newline there, and the script would no longer match its hash in the page's policy).
_UNSAFE_INLINE = re.compile(r"</script|<!--|\r", re.IGNORECASE)


class LibraryError(RuntimeError):
    """The vendored file is missing, changed, or cannot be inlined: a broken build, not a request's fault."""


def check_inlinable(text: str) -> str:
    """``text`` as it may go inside a <script> element unchanged; LibraryError otherwise."""
    found = _UNSAFE_INLINE.search(text)
    if found:
        raise LibraryError(f"{LIBRARY_FILE} cannot be inlined: it contains {found.group()!r} at {found.start()}")
    return text


@lru_cache(maxsize=1)
def library_source() -> str:
    """The standalone build (it defines ``window.LightweightCharts``), after checking its sha256."""
    path = VENDOR_DIR / LIBRARY_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LibraryError(f"cannot read {path}: {exc.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != LIBRARY_SHA256:
        raise LibraryError(f"{path} has sha256 {digest}, expected {LIBRARY_SHA256} (see vendor/README.md)")
    return check_inlinable(data.decode("utf-8"))
