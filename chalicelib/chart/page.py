"""The candlestick chart page: one self-contained HTML document (the charting library inlined, no CDN).

Two modes share one page script:

- ``live`` (GET /chart): the page reads GET /symbols and GET /bars of its own API (relative URLs, so it works
  under an API Gateway stage path) and polls every ``POLL_MS``: the newest bars every time, every bar every
  ``FULL_EVERY`` polls (a late tick can revise an older bar).
- ``embedded`` (the operator's ``chart`` command): the bars travel inside the page; no requests at all.

After every change the page publishes what its series hold as ``window.chartState`` and as JSON in
``<pre id="chart-state">``: mode, symbol, interval, ``candles`` (the candlestick series' length) and ``last``
(time in UTC seconds, open, high, low, close), plus ``updates`` (how many times the series changed) and ``error``.

Pure: the only input besides the arguments is the vendored library file (chart/library.py).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from ..domain.bars import INTERVALS
from ..domain.queries import MAX_BAR_LIMIT, parse_interval
from .library import check_inlinable, library_source

LIVE = "live"
EMBEDDED = "embedded"
POLL_MS = 2000
FULL_EVERY = 15  # polls: a full reload (and the symbol list) about every 30 s
# The fields of a bar (as GET /bars gives it) that an embedded page keeps.
EMBEDDED_FIELDS = ("start", "open", "high", "low", "close", "volume", "trades", "revision")

_STYLE = """
:root { color-scheme: light; --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --accent: #0969da; }
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column; background: #fff; color: var(--fg);
       font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 14px; padding: 8px 12px;
         border-bottom: 1px solid var(--line); }
h1 { font-size: 15px; font-weight: 600; margin: 0; }
button, select { font: inherit; color: inherit; background: #f6f8fa; border: 1px solid var(--line);
                 border-radius: 6px; padding: 3px 10px; cursor: pointer; }
button:disabled, select:disabled { cursor: default; opacity: 0.5; }
.intervals { display: inline-flex; }
.intervals button { border-radius: 0; margin-left: -1px; }
.intervals button:first-child { border-radius: 6px 0 0 6px; margin-left: 0; }
.intervals button:last-child { border-radius: 0 6px 6px 0; }
.intervals button[aria-pressed="true"] { background: var(--accent); border-color: var(--accent); color: #fff;
                                         opacity: 1; position: relative; }
#status { margin-left: auto; color: var(--muted); font-size: 13px; }
#status.error { color: #cf222e; }
main { position: relative; flex: 1; min-height: 320px; }
#chart { position: absolute; inset: 0; }
#legend { position: absolute; top: 6px; left: 10px; z-index: 3; pointer-events: none; padding: 2px 6px;
          border-radius: 4px; background: rgba(255, 255, 255, 0.85);
          font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre; }
#empty { position: absolute; inset: 0; z-index: 2; display: flex; align-items: center; justify-content: center;
         color: var(--muted); pointer-events: none; }
#empty[hidden] { display: none; }
"""

# The page script: reads #chart-config, draws, polls (live) and publishes window.chartState.
_SCRIPT = r"""
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("chart-config").textContent);
  const LC = window.LightweightCharts;
  const live = config.mode === "live";
  const $ = (id) => document.getElementById(id);
  const UP = "#26a69a", DOWN = "#ef5350";
  const ISO_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z$/;
  const DECIMAL = /^-?\d+(?:\.\d+)?$/;
  const intervalButtons = Array.from(document.querySelectorAll("[data-interval]"));

  const view = {symbol: config.symbol || null, interval: config.interval};
  let bars = [];             // what the series hold, in time order: {time, bar (as the API sent it), key, ...}
  let byTime = new Map();
  let generation = 0;        // bumped when the view changes: answers for an older view are dropped
  let polls = 0, updates = 0, skipped = 0, timer = null, error = null, fetchedAt = null, precision = null;

  const chart = LC.createChart($("chart"), {
    autoSize: true,
    layout: {background: {type: LC.ColorType.Solid, color: "#ffffff"}, textColor: "#1f2328"},
    grid: {vertLines: {color: "#f0f3fa"}, horzLines: {color: "#f0f3fa"}},
    rightPriceScale: {scaleMargins: {top: 0.08, bottom: 0.3}},
    timeScale: {timeVisible: true, secondsVisible: false, maxBarSpacing: 40},
    crosshair: {mode: LC.CrosshairMode.Normal},
  });
  const candles = chart.addSeries(LC.CandlestickSeries, {
    upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN,
  });
  const volumes = chart.addSeries(LC.HistogramSeries, {
    priceFormat: {type: "volume"}, priceScaleId: "volume", lastValueVisible: false, priceLineVisible: false,
  });
  chart.priceScale("volume").applyOptions({scaleMargins: {top: 0.75, bottom: 0}});

  // Bar starts are ISO 8601 UTC ("2024-07-01T14:30:00Z"); the chart wants UTC seconds.
  function utcSeconds(text) {
    const m = typeof text === "string" ? ISO_UTC.exec(text) : null;
    return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000 : null;
  }
  // Prices and volumes are exact decimal strings; the chart draws doubles, the legend shows the strings.
  function number(text) {
    if (typeof text !== "string" || !DECIMAL.test(text)) return null;
    const value = Number(text);
    return Number.isFinite(value) ? value : null;
  }
  function places(text) {
    const dot = text.indexOf(".");
    return dot < 0 ? 0 : text.length - dot - 1;
  }

  function entry(bar) {
    const time = utcSeconds(bar.start);
    const open = number(bar.open), high = number(bar.high), low = number(bar.low), close = number(bar.close);
    const value = number(bar.volume);
    if (time === null || open === null || high === null || low === null || close === null || value === null) {
      return null;
    }
    return {
      time, bar,
      key: [bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.revision].join("|"),
      candle: {time, open, high, low, close},
      volume: {time, value, color: close >= open ? "rgba(38, 166, 154, 0.5)" : "rgba(239, 83, 80, 0.5)"},
    };
  }
  // API bars -> entries in strictly increasing time (the chart refuses anything else).
  function entries(raw) {
    const out = [];
    skipped = 0;
    for (const bar of raw) {
      const e = entry(bar);
      if (e === null) skipped++; else out.push(e);
    }
    out.sort((a, b) => a.time - b.time);
    return out.filter((e, i) => i + 1 === out.length || out[i + 1].time !== e.time);
  }

  function applyPrecision(list) {
    let p = 2;
    for (const e of list) {
      p = Math.max(p, places(e.bar.open), places(e.bar.high), places(e.bar.low), places(e.bar.close));
    }
    p = Math.min(p, 10);
    if (p !== precision) {
      precision = p;
      candles.applyOptions({priceFormat: {type: "price", precision: p, minMove: Math.pow(10, -p)}});
    }
  }

  // Put `next` in the series: update() when only the last bar changed or bars were added (keeps the user's
  // zoom and scroll), setData() otherwise. False when nothing changed.
  function show(next, fit) {
    let same = 0;
    while (same < bars.length && same < next.length && bars[same].key === next[same].key) same++;
    if (same === bars.length && same === next.length) return false;
    applyPrecision(next);
    const tailOnly = bars.length > 0 && next.length >= bars.length
      && (same === bars.length || (same === bars.length - 1 && next[same].time === bars[same].time));
    if (tailOnly) {
      for (let i = same; i < next.length; i++) {
        candles.update(next[i].candle);
        volumes.update(next[i].volume);
      }
    } else {
      candles.setData(next.map((e) => e.candle));
      volumes.setData(next.map((e) => e.volume));
    }
    bars = next;
    byTime = new Map(next.map((e) => [e.time, e]));
    updates++;
    if (fit) chart.timeScale().fitContent();
    return true;
  }

  function legend(time) {
    const e = (time !== undefined && byTime.get(time)) || bars[bars.length - 1];
    $("legend").textContent = e
      ? `${e.bar.start}  O ${e.bar.open}  H ${e.bar.high}  L ${e.bar.low}  C ${e.bar.close}  V ${e.bar.volume}`
      : "";
  }

  function publish() {
    const data = candles.data();
    const last = data.length ? data[data.length - 1] : null;
    const state = {
      mode: config.mode, symbol: view.symbol, interval: view.interval,
      candles: data.length, volumes: volumes.data().length,
      last: last && {time: last.time, open: last.open, high: last.high, low: last.low, close: last.close},
      lastStart: bars.length ? bars[bars.length - 1].bar.start : null,
      skipped, updates, polls, error, fetchedAt,
    };
    window.chartState = state;
    $("chart-state").textContent = JSON.stringify(state);
    $("empty").hidden = data.length > 0;
    $("empty").textContent = view.symbol ? `No ${view.interval} bars of ${view.symbol}` : "No symbols yet";
    const status = $("status");
    status.classList.toggle("error", error !== null);
    const when = fetchedAt ? (live ? `updated ${fetchedAt.slice(11, 19)} UTC` : `generated ${fetchedAt}`) : "";
    status.textContent = error !== null ? `error: ${error}` : [`${data.length} bars`, when, "times in UTC"]
      .filter(Boolean).join(" · ");
    legend(undefined);
  }

  function controls() {
    for (const button of intervalButtons) {
      button.setAttribute("aria-pressed", String(button.dataset.interval === view.interval));
    }
    document.title = `${view.symbol || "Chart"} ${view.interval} · market-data`;
    $("symbol").value = view.symbol || "";
  }

  function fillSymbols(names) {
    const select = $("symbol");
    const all = view.symbol && !names.includes(view.symbol) ? [view.symbol, ...names] : names;
    if (Array.from(select.options, (o) => o.value).join("\n") !== all.join("\n")) {
      select.replaceChildren(...all.map((name) => new Option(name, name)));
    }
    select.value = view.symbol || "";
  }

  async function getJson(path) {
    const resp = await fetch(path, {headers: {Accept: "application/json"}, cache: "no-store"});
    let doc = null;
    try { doc = await resp.json(); } catch (_) { doc = null; }
    if (!resp.ok) throw new Error(doc && doc.message ? doc.message : `HTTP ${resp.status}`);
    if (doc === null || typeof doc !== "object") throw new Error(`${path.split("?")[0]} did not answer JSON`);
    return doc;
  }

  // Every bar of the view from `start` (an API bar start; null: from the beginning), following `next`.
  async function fetchBars(v, start) {
    const out = [];
    let cursor = null;
    for (;;) {
      const query = new URLSearchParams({symbol: v.symbol, interval: v.interval, limit: String(config.pageLimit)});
      if (start) query.set("start", start);
      if (cursor) query.set("next", cursor);
      const page = await getJson(`bars?${query}`);
      out.push(...page.bars);
      if (!page.next) return out;
      if (page.next === cursor) throw new Error("the bars cursor did not advance");
      cursor = page.next;
    }
  }

  async function poll() {
    const gen = generation;
    const v = {symbol: view.symbol, interval: view.interval};
    try {
      const full = bars.length === 0 || polls % config.fullEvery === 0;
      if (!v.symbol || full) {
        const names = (await getJson("symbols")).symbols.map((s) => s.symbol);
        if (gen !== generation) return;
        fillSymbols(names);
        if (!v.symbol) {
          if (names.length) select({symbol: names[0]});
          return;
        }
      }
      // Between full reloads only the bars from the last one on: the last bar grows, new bars follow it.
      const from = full ? null : bars[bars.length - 1];
      const fresh = entries(await fetchBars(v, from && from.bar.start));
      if (gen !== generation) return;
      show(from ? bars.slice(0, -1).concat(fresh) : fresh, bars.length === 0);
      error = null;
      fetchedAt = new Date().toISOString();
    } catch (e) {
      if (gen === generation) error = String((e && e.message) || e);
    } finally {
      if (gen === generation) {
        polls++;
        publish();
        timer = setTimeout(poll, config.pollMs);
      }
    }
  }

  function select(change) {
    Object.assign(view, change);
    generation++;
    clearTimeout(timer);
    polls = 0;
    bars = [];
    byTime = new Map();
    error = null;
    fetchedAt = null;
    candles.setData([]);
    volumes.setData([]);
    controls();
    if (live) {
      const url = new URL(window.location.href);
      url.searchParams.set("symbol", view.symbol);
      url.searchParams.set("interval", view.interval);
      window.history.replaceState(null, "", url);
    }
    publish();
    if (live) poll();
  }

  chart.subscribeCrosshairMove((param) => legend(param.time));
  $("symbol").addEventListener("change", (event) => select({symbol: event.target.value}));
  for (const button of intervalButtons) {
    button.addEventListener("click", () => {
      if (button.dataset.interval !== view.interval) select({interval: button.dataset.interval});
    });
  }
  $("fit").addEventListener("click", () => chart.timeScale().fitContent());
  $("latest").addEventListener("click", () => chart.timeScale().scrollToRealTime());

  controls();
  fillSymbols([]);
  if (live) {
    publish();
    poll();
  } else {
    $("symbol").disabled = true;
    for (const button of intervalButtons) button.disabled = button.dataset.interval !== view.interval;
    show(entries(config.bars), true);
    fetchedAt = config.generatedAt || null;
    publish();
  }
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{{policy}}">
<title>{{title}}</title>
<link rel="icon" href="data:,">
<style>{{style}}</style>
</head>
<body>
<header>
  <h1>market-data</h1>
  <label>Symbol <select id="symbol" aria-label="Symbol"></select></label>
  <span class="intervals" role="group" aria-label="Interval">{{interval_buttons}}</span>
  <button id="fit" type="button" title="Zoom to show every bar">Fit</button>
  <button id="latest" type="button" title="Scroll to the newest bar">Latest</button>
  <span id="status" role="status" aria-live="polite"></span>
</header>
<main>
  <div id="chart"></div>
  <div id="legend"></div>
  <div id="empty" hidden></div>
</main>
<pre id="chart-state" hidden></pre>
<noscript>The chart needs JavaScript.</noscript>
<script type="application/json" id="chart-config">{{config}}</script>
<script>{{library}}</script>
<script>{{script}}</script>
</body>
</html>
"""
_SLOT = re.compile(r"\{\{(\w+)\}\}")


def script_json(doc: Any) -> str:
    """``doc`` as JSON that can sit inside a <script> element: ASCII only, and no ``<``, ``>`` or ``&`` (so no
    ``</script>`` or ``<!--``), each written as its \\u escape, which JSON.parse reads back unchanged."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _script_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@lru_cache(maxsize=2)
def content_security_policy(mode: str) -> str:
    """The page's policy: only its own two scripts run; a live page may call its own API, an embedded one
    nothing at all."""
    connect = " connect-src 'self';" if mode == LIVE else ""
    return (f"default-src 'none'; script-src {_script_hash(library_source())} {_script_hash(_SCRIPT)};"
            f" style-src 'unsafe-inline'; img-src data:;{connect} base-uri 'none'; form-action 'none'")


def _interval_buttons() -> str:
    return "".join(f'<button type="button" data-interval="{html.escape(name)}" aria-pressed="false">'
                   f"{html.escape(name)}</button>" for name in INTERVALS)


def _render(mode: str, symbol: str | None, interval: str, extra: Mapping[str, Any]) -> str:
    interval = parse_interval(interval)
    config = {"mode": mode, "symbol": symbol, "interval": interval, "intervals": list(INTERVALS),
              "pollMs": POLL_MS, "fullEvery": FULL_EVERY, "pageLimit": MAX_BAR_LIMIT, **extra}
    slots = {
        "policy": html.escape(content_security_policy(mode)),
        "title": html.escape(f"{symbol or 'Chart'} {interval} · market-data"),
        "style": _STYLE,
        "interval_buttons": _interval_buttons(),
        "config": script_json(config),
        "library": library_source(),
        "script": check_inlinable(_SCRIPT),
    }
    return _SLOT.sub(lambda m: slots[m.group(1)], _PAGE)


def render_live_page(symbol: str | None, interval: str) -> str:
    """The page GET /chart serves: it starts on ``symbol`` (None: the first symbol of GET /symbols) and
    ``interval``, and reads and polls the API it was served from."""
    return _render(LIVE, symbol, interval, {})


def render_embedded_page(symbol: str, interval: str, bars: Iterable[Mapping[str, Any]],
                         generated_at: str | None = None) -> str:
    """A page that carries its bars (each as GET /bars gives it) and asks for nothing: a file to open anywhere."""
    kept = [{name: bar.get(name) for name in EMBEDDED_FIELDS} for bar in bars]
    return _render(EMBEDDED, symbol, interval, {"bars": kept, "generatedAt": generated_at})
