"""The chart page (chalicelib/chart) and the operator's ``chart`` command on the in-memory fakes.

The page's behaviour in a browser is tests/e2e/test_chart.py; here: what the HTML carries and how safely.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.bootstrap import UseCases, wire, wire_operations
from chalicelib.chart import content_security_policy, render_embedded_page, render_live_page
from chalicelib.chart.library import (
    LIBRARY_SHA256,
    LIBRARY_VERSION,
    VENDOR_DIR,
    LibraryError,
    check_inlinable,
    library_source,
)
from chalicelib.chart.page import EMBEDDED_FIELDS, script_json
from chalicelib.domain.bars import INTERVALS
from chalicelib.domain.errors import InvalidQuery
from chalicelib.entrypoints import cli
from chalicelib.settings import Settings
from chalicelib.usecases.operator import Operations
from tests.fakes import MemoryDeadLetterQueue, MemoryEvents, MemoryObjects, MemoryQueue, MemoryStateStore, bars_json

CONFIG = re.compile(r'<script type="application/json" id="chart-config">(.*?)</script>', re.DOTALL)
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def config_of(page: str) -> dict[str, Any]:
    (found,) = CONFIG.findall(page)
    return dict(json.loads(found))


def bar(start: str, close: str = "10.5", **fields: Any) -> dict[str, Any]:
    return {"start": start, "open": "10", "high": "11", "low": "9.75", "close": close, "volume": "3",
            "vwap": "10.25", "trades": 2, "first_tick": start, "last_tick": start, "revision": 1, **fields}


# ---------------------------------------------------------------------------------------------- the page
def test_the_library_is_inlined_whole_and_nothing_is_loaded_from_elsewhere() -> None:
    page = render_live_page("AAPL", "1m")
    assert library_source() in page
    assert f"v{LIBRARY_VERSION}" in library_source()  # the file's own banner names the version vendored
    assert not re.search(r"<script[^>]*\ssrc=|<img\b|@import", page, re.IGNORECASE)
    assert re.findall(r"<link\b[^>]*>", page) == ['<link rel="icon" href="data:,">']  # no request for a favicon


def test_every_interval_of_the_domain_has_a_button_and_the_page_starts_on_the_one_asked() -> None:
    page = render_live_page("BTC/USDT", "15m")
    for name in INTERVALS:
        assert f'data-interval="{name}"' in page
    config = config_of(page)
    assert config["intervals"] == list(INTERVALS) == ["1m", "5m", "15m", "1h", "1d"]
    assert (config["mode"], config["symbol"], config["interval"]) == ("live", "BTC/USDT", "15m")
    assert config["pollMs"] == 2000 and "bars" not in config
    assert config_of(render_live_page(None, "1m"))["symbol"] is None  # the page picks a symbol itself


def test_an_interval_the_api_does_not_serve_is_refused() -> None:
    with pytest.raises(InvalidQuery, match="interval must be one of 1m, 5m, 15m, 1h, 1d"):
        render_live_page("AAPL", "2m")


def test_embedded_bars_are_escaped_so_they_cannot_end_the_script_and_read_back_unchanged() -> None:
    hostile = "</script><script>alert(1)</script><!-- & \u2028 </SCRIPT >"
    bars = [bar("2024-07-01T14:30:00Z"), bar("2024-07-01T14:31:00Z", close=hostile)]
    page = render_embedded_page("AAPL", "1m", bars, "2024-07-01T15:00:00Z")
    assert "alert(1)" in page and "<script>alert(1)" not in page
    assert page.lower().count("</script") == 3  # the config, the library and the page script: nothing else
    assert "<!-- &" not in page and "\u2028" not in page
    config = config_of(page)
    assert config["bars"] == [{k: b[k] for k in EMBEDDED_FIELDS} for b in bars]
    assert (config["mode"], config["generatedAt"]) == ("embedded", "2024-07-01T15:00:00Z")
    assert json.loads(script_json({"a": "</script>&<!--"})) == {"a": "</script>&<!--"}
    assert not set("<>&") & set(script_json({"a": "</script>&<!--"}))


def test_the_policy_lets_exactly_the_pages_own_scripts_run() -> None:
    for page, mode in ((render_live_page("AAPL", "1m"), "live"),
                       (render_embedded_page("AAPL", "1h", [bar("2024-07-01T14:00:00Z")]), "embedded")):
        policy = content_security_policy(mode)
        assert f'content="{policy.replace(chr(39), "&#x27;")}"' in page
        scripts = INLINE_SCRIPT.findall(page)
        assert len(scripts) == 2
        for script in scripts:
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy
        assert policy.startswith("default-src 'none';") and "unsafe-eval" not in policy
        assert ("connect-src 'self'" in policy) == (mode == "live")


def test_the_vendored_file_is_the_one_its_readme_names() -> None:
    readme = (VENDOR_DIR / "README.md").read_text()
    assert LIBRARY_SHA256 in readme and f"| version | {LIBRARY_VERSION} |" in readme
    assert f"lightweight-charts-{LIBRARY_VERSION}.tgz" in readme and "Apache-2.0" in readme
    assert "Apache License" in (VENDOR_DIR / "LICENSE").read_text()
    assert hashlib.sha256(library_source().encode()).hexdigest() == LIBRARY_SHA256


@pytest.mark.parametrize("text", ["a</script>b", "a</SCRIPT b", "x<!--y", "line\r\n"])
def test_text_that_would_break_an_inline_script_is_refused(text: str) -> None:
    with pytest.raises(LibraryError, match="cannot be inlined"):
        check_inlinable(text)


# ---------------------------------------------------------------------------------------------- the command
SYMBOL = "CHRT"


@pytest.fixture
def pipeline() -> tuple[UseCases, Operations]:
    """Four 1m bars of SYMBOL (09:00-09:03), built by the pipeline itself from posted ticks."""
    store, queue, objects = MemoryStateStore(), MemoryQueue(), MemoryObjects()
    use_cases = wire(store, queue, MemoryEvents(), objects, Settings())
    ticks = [{"symbol": SYMBOL, "price": f"{100 + i}.{i}5", "volume": i + 1, "timestamp": f"2024-07-01T09:0{i}:{s}Z"}
             for i in range(4) for s in ("10", "50")]
    use_cases.ingest_body(json.dumps(ticks).encode(), "application/json")
    assert use_cases.process_batch(queue.receive_all()).failed_message_ids == []
    use_cases.aggregate()
    return use_cases, wire_operations(use_cases, store, queue, MemoryDeadLetterQueue(), objects)


def run_cli(ops: Operations, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = cli.main(list(argv), operations_for=lambda settings: ops)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_chart_writes_a_page_carrying_the_bars_the_api_serves(
        pipeline: tuple[UseCases, Operations], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    use_cases, ops = pipeline
    out = tmp_path / "chart.html"
    code, result, _ = run_cli(ops, capsys, "chart", "--symbol", SYMBOL, "--interval", "1m", "--out", str(out))

    assert code == 0
    served = bars_json(use_cases, SYMBOL, "1m")["bars"]
    assert len(served) == 4
    page = out.read_text(encoding="utf-8")
    config = config_of(page)
    assert config["bars"] == [{k: b[k] for k in EMBEDDED_FIELDS} for b in served]
    assert (config["mode"], config["symbol"], config["interval"]) == ("embedded", SYMBOL, "1m")
    assert served[-1]["close"] == "103.35" and library_source() in page
    assert result == {"out": str(out), "symbol": SYMBOL, "interval": "1m", "bars": 4,
                      "first": "2024-07-01T09:00:00Z", "last": "2024-07-01T09:03:00Z", "bytes": len(page.encode())}


def test_chart_follows_the_cursor_and_keeps_to_the_range(
        pipeline: tuple[UseCases, Operations], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_cases, ops = pipeline
    monkeypatch.setattr(cli, "MAX_BAR_LIMIT", 1)  # one bar a page: every bar comes through a `next`
    out = tmp_path / "range.html"
    code, result, _ = run_cli(ops, capsys, "chart", "--symbol", SYMBOL, "--start", "2024-07-01T09:01:00Z",
                              "--end", "2024-07-01T09:03:00Z", "--out", str(out))

    assert code == 0 and result["bars"] == 2
    starts = [b["start"] for b in config_of(out.read_text())["bars"]]
    assert starts == ["2024-07-01T09:01:00Z", "2024-07-01T09:02:00Z"]
    five = tmp_path / "five.html"
    assert run_cli(ops, capsys, "chart", "--symbol", SYMBOL, "--interval", "5m", "--out", str(five))[0] == 0
    assert [b["volume"] for b in config_of(five.read_text())["bars"]] == ["20"]  # 2 * (1 + 2 + 3 + 4)
    assert bars_json(use_cases, SYMBOL, "5m")["bars"][0]["volume"] == "20"


def test_chart_answers_bad_options_with_exit_2_and_an_unwritable_file_with_exit_1(
        pipeline: tuple[UseCases, Operations], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ops = pipeline
    out = tmp_path / "x.html"
    code, _, err = run_cli(ops, capsys, "chart", "--symbol", SYMBOL, "--start", "yesterday", "--out", str(out))
    assert code == 2 and err.startswith("error: start ") and not out.exists()
    code, _, err = run_cli(ops, capsys, "chart", "--symbol", "BAD SYMBOL", "--out", str(out))
    assert code == 2 and "symbol" in err and not out.exists()
    code, _, err = run_cli(ops, capsys, "chart", "--symbol", SYMBOL, "--out", str(tmp_path / "no" / "such.html"))
    assert code == 1 and "such.html" in err
    with pytest.raises(SystemExit) as exited:
        cli.main(["chart", "--symbol", SYMBOL, "--interval", "2m", "--out", str(out)], operations_for=lambda s: ops)
    assert exited.value.code == 2
