"""The candlestick chart page (page.py) and the charting library it inlines (library.py, vendor/)."""

from .page import EMBEDDED, LIVE, content_security_policy, render_embedded_page, render_live_page

__all__ = ["EMBEDDED", "LIVE", "content_security_policy", "render_embedded_page", "render_live_page"]
