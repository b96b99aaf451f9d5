"""The chart page in a real browser: headless Chromium, driven by Selenium, on GET /chart of the local stack.

What the page's series hold (``window.chartState``, mirrored in ``<pre id="chart-state">``) must be what GET /bars
serves, and follow it as bars are added and revised. A screenshot lands in test-output/.
"""

from __future__ import annotations

import calendar
import json
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from localrun.control import REPO_ROOT, LocalStack, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
# Checked before any fixture, so a machine without the browser does not start the stack for nothing.
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(bool(MISSING), reason=f"the chart test needs Chromium and its driver; missing: "
                                 f"{', '.join(MISSING)} (apt-get install chromium chromium-driver)")]
SCREENSHOTS = REPO_ROOT / "test-output"
BARS_TIMEOUT_S = 30
CHART_TIMEOUT_S = 10  # two polls of the page and then some


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium with a fresh profile; the installed driver only (nothing is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def post(stack: LocalStack, ticks: list[dict[str, Any]]) -> None:
    resp = stack.post_ingest(ticks)
    assert resp.status == 202, resp.body


def wait_bars(stack: LocalStack, symbol: str, ready: Callable[[list[dict[str, Any]]], bool],
              interval: str = "1m") -> list[dict[str, Any]]:
    """GET /bars (every page) until ``ready(bars)``."""
    def served() -> list[dict[str, Any]] | None:
        bars = stack.bars(symbol, interval)
        return bars if ready(bars) else None

    return wait_for(served, BARS_TIMEOUT_S, f"{interval} bars of {symbol}")


def chart_state(browser: Any) -> dict[str, Any] | None:
    state = browser.execute_script("return window.chartState || null")
    if state is not None:  # the DOM mirror says the same
        assert json.loads(browser.find_element("id", "chart-state").get_attribute("textContent")) == state
    return state


def wait_chart(browser: Any, bars: list[dict[str, Any]]) -> dict[str, Any]:
    """Until the candlestick series holds exactly as many bars as ``bars`` and its last one is theirs."""
    last = bars[-1]
    expected = {"time": calendar.timegm(time.strptime(last["start"], "%Y-%m-%dT%H:%M:%SZ")),
                **{field: float(last[field]) for field in ("open", "high", "low", "close")}}

    def matches() -> dict[str, Any] | None:
        state = chart_state(browser)
        assert state is not None, "no window.chartState yet"
        assert state["error"] is None, state["error"]
        assert (state["candles"], state["volumes"], state["last"]) == (len(bars), len(bars), expected), state
        return state

    return wait_for(matches, CHART_TIMEOUT_S, f"the chart to show {len(bars)} bars ending {expected}")


def painted(browser: Any) -> None:
    """Two animation frames: the chart draws what it was given on the next one."""
    browser.execute_async_script("const done = arguments[0];"
                                 "requestAnimationFrame(() => requestAnimationFrame(() => done(true)));")


def ticks_of(symbol: str, minutes: int) -> list[dict[str, Any]]:
    """A deterministic random walk: three ticks a minute from 2024-03-04T10:00Z, prices with up to 3 decimals."""
    walk = random.Random(20240304)
    price, ticks = Decimal("100.000"), []
    for minute in range(minutes):
        for second in (5, 25, 50):
            price = max(Decimal("1"), price + Decimal(walk.randint(-600, 620)) / 1000)
            ticks.append({"symbol": symbol, "price": str(price), "volume": str(walk.randint(1, 40)),
                          "timestamp": f"2024-03-04T10:{minute:02d}:{second:02d}Z"})
    return ticks


def test_the_chart_shows_the_bars_the_api_serves_and_follows_them(
        browser: Any, stack: LocalStack, symbol: str) -> None:
    post(stack, ticks_of(symbol, 30))
    bars = wait_bars(stack, symbol, lambda got: len(got) == 30)

    browser.get(f"{stack.api_url}/chart?" + urllib.parse.urlencode({"symbol": symbol, "interval": "1m"}))
    state = wait_chart(browser, bars)
    assert (state["mode"], state["symbol"], state["interval"]) == ("live", symbol, "1m")
    assert state["last"]["time"] == 1709548140  # 10:29 UTC
    assert browser.find_element("css selector", '[data-interval="1m"]').get_attribute("aria-pressed") == "true"
    assert symbol in [o.text for o in browser.find_elements("css selector", "#symbol option")]
    painted(browser)
    SCREENSHOTS.mkdir(exist_ok=True)
    screenshot = SCREENSHOTS / f"chart-{re.sub(r'[^A-Za-z0-9._-]', '_', symbol)}.png"
    assert browser.save_screenshot(str(screenshot)), "no screenshot"
    print(f"chart screenshot: {screenshot}")

    # A tick in a new minute: a new candle.
    post(stack, [{"symbol": symbol, "price": "103.5", "volume": "2", "timestamp": "2024-03-04T10:30:15Z"}])
    bars = wait_bars(stack, symbol, lambda got: len(got) == 31)
    state = wait_chart(browser, bars)
    assert state["last"] == {"time": 1709548200, "open": 103.5, "high": 103.5, "low": 103.5, "close": 103.5}
    # A later tick in that minute: the last candle changes in place.
    post(stack, [{"symbol": symbol, "price": "104.75", "volume": "1", "timestamp": "2024-03-04T10:30:45Z"}])
    bars = wait_bars(stack, symbol, lambda got: len(got) == 31 and got[-1]["close"] == "104.75")
    state = wait_chart(browser, bars)
    assert state["last"] == {"time": 1709548200, "open": 103.5, "high": 104.75, "low": 103.5, "close": 104.75}
    # Another interval: the page switches its series (and its URL) to the 5m bars.
    browser.find_element("css selector", '[data-interval="5m"]').click()
    five = wait_bars(stack, symbol, lambda got: len(got) == 7 and got[-1]["close"] == "104.75", "5m")
    state = wait_chart(browser, five)
    assert state["interval"] == "5m" and "interval=5m" in browser.current_url

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe  # no script error, no request refused, nothing the page's policy blocked
