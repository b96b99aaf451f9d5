"""DataAggregator: rebuild the bars of dirty windows, 1m from partials and each coarser interval from the next
finer one; a published bar that changes gets its revision bumped, and BarsRevised tells consumers which.

Runs may overlap (events, the schedule, the operator's recompute, retries, several Lambdas): each symbol is
rebuilt by one run at a time, the holder of the symbol's lease, and every bar write is a transaction that
checks the lease, so a run that lost its lease (it was paused past the lease's expiry) cannot write bars
computed from older partials. A run reads the marks, then the partials and bars, all strongly consistent, and
deletes only the marks it read: a window marked meanwhile stays dirty and is redone by the next run.

A run works for a bounded time. Symbols it could not finish, or more symbols than one run takes, are handed on
at once to new runs (an AggregationPending event), so a backlog is worked through by several runs in parallel
and the schedule is only the safety net. Only the sources that count (see sources.py) are merged.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain.bars import INTERVALS, Bar, merge_all, window_start
from ..domain.errors import LeaseLost, TransientError
from ..domain.ingestion import ingestion_of
from ..domain.timefmt import format_ns
from ..observability import logger
from ..ports import (
    GET_BARS_LIMIT,
    BarStore,
    DirtyWindow,
    DirtyWindowStore,
    EventPublisher,
    Lease,
    LeaseStore,
    PartialStore,
    SymbolStore,
)
from ..schemas import (
    AGGREGATION_PENDING,
    BARS_REVISED,
    AggregationPendingDetail,
    BarsRevisedDetail,
    RevisedBar,
    to_builtins,
)
from ..settings import Settings
from .common import Clock, Metric, no_metric
from .sources import Sources

MAX_REVISIONS_LISTED = 500
# Windows of one symbol closer than this are read with one query.
RANGE_GAP_NS = INTERVALS["1h"]
LEVELS = ("1m", "5m", "15m", "1h", "1d")
NS_PER_S = 1_000_000_000
ROUND_COST_FACTOR = 3  # the gap after a long round, in round lengths
# A TicksProcessed event's marks (see ports.announced_marks) are looked up, to skip the symbols another run has
# worked off, when the lookup takes at most one read per SYMBOLS_PER_LOOKUP symbols.
SYMBOLS_PER_LOOKUP = 2
LOOKUP_SYMBOLS = 10  # symbols whose announced marks are looked up together, just before they are worked
LOOKUP_KEYS = 100  # marks one read looks up (DynamoDB's BatchGetItem takes 100 keys)


def _levels(minutes: list[int]) -> list[tuple[str, str | None, list[int]]]:
    """Per level: the level, its parent and the parent's windows over these minutes (the 1d level: the days)."""
    out: list[tuple[str, str | None, list[int]]] = []
    starts = minutes
    for level, parent in zip(LEVELS, (*LEVELS[1:], None), strict=False):
        windows = sorted({window_start(s, parent) for s in starts}) if parent else starts
        out.append((level, parent, windows))
        starts = windows
    return out


def _ranges(points: Sequence[int], gap: int) -> Iterator[tuple[int, int]]:
    """Group sorted points into [lo, hi] ranges whose neighbours are at most ``gap`` apart."""
    if not points:
        return
    lo = hi = points[0]
    for p in points[1:]:
        if p - hi > gap:
            yield lo, hi
            lo = p
        hi = p
    yield lo, hi


@dataclass
class _Run:
    """What one invocation did, for its summary and its BarsRevised event."""

    deadline: float
    next_round: dict[str, int] = field(default_factory=dict)  # symbol -> the earliest its next round starts (ns)
    revised: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("windows", "symbols", "bars_written", "bars_revised", "skipped_clean", "skipped_worked", "skipped_leased",
         "leases_lost", "handed_on"), 0))


class Aggregate:
    def __init__(self, dirty: DirtyWindowStore, partials: PartialStore, bars: BarStore, symbols: SymbolStore,
                 leases: LeaseStore, sources: Sources, events: EventPublisher, settings: Settings,
                 clock: Clock = time.time_ns, metric: Metric = no_metric,
                 new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._dirty = dirty
        self._partials = partials
        self._bars = bars
        self._symbols = symbols
        self._leases = leases
        self._sources = sources
        self._events = events
        self._settings = settings
        self._clock = clock
        self._metric = metric
        self._new_token = new_token
        self._monotonic = monotonic
        self._sleep = sleep
        self._latest_known: dict[str, int] = {}  # symbol -> latest bar start this process stored
        # symbol -> (its withdrawals when learnt, the requests found to count in its last round): see sources.py
        self._counting: dict[str, tuple[int, frozenset[str]]] = {}

    def __call__(self, symbols: Iterable[str] | None = None,
                 announced: Sequence[tuple[str, int, str]] = ()) -> dict[str, int]:
        """Rebuild the bars of every dirty window of ``symbols`` (None: of every symbol with one).

        ``announced``: the marks (symbol, hour, token) that made this run come (see ports.announced_marks). A symbol
        none of whose announced marks is left was worked off by another run after they were written, so this
        run skips it without looking (a mark is deleted only once its windows are rebuilt, and a mark written
        since comes with an event of its own)."""
        run = _Run(deadline=self._monotonic() + self._settings.aggregate_seconds)
        todo = self._dirty.dirty_symbols() if symbols is None else sorted(set(symbols))
        group = self._settings.symbols_per_run
        mine, rest = todo[:group], todo[group:]
        self._hand_on(rest, run)
        # Runs for the same symbols take them in orders of their own, so they do not queue up behind each other
        # (in one order from different places, a run that caught up with another would keep meeting it).
        random.shuffle(mine)
        unfinished: list[str] = []
        held: list[str] = []
        awaited = {symbol for symbol, _, _ in announced}
        # The announced marks are looked up a few symbols at a time, just before those are worked: runs that
        # started together learn what the others did meanwhile.
        pending = deque(mine)
        while pending:
            chunk = [pending.popleft() for _ in range(min(LOOKUP_SYMBOLS, len(pending)))]
            looked = deque(self._not_worked_off(chunk, announced, run))

            def hand_on_the_rest(looked: deque[str] = looked) -> None:
                # This symbol has a backlog (more marks than one round takes): the symbols after it go to other
                # runs now, which work them in parallel, rather than after its backlog.
                rest = [*looked, *pending]
                looked.clear()
                pending.clear()
                self._hand_on(rest, run)

            while looked:
                symbol = looked.popleft()
                self._symbol(symbol, run, unfinished, held if symbol in awaited else None, hand_on_the_rest)
                if unfinished and self._monotonic() < run.deadline:
                    # Its slice ran out with work left: another run goes on with it now, in parallel with the
                    # symbols this run has yet to work, rather than after them.
                    self._hand_on(unfinished, run)
                    unfinished.clear()
        # Symbols another run was working when this one came: most often that run has worked this run's marks
        # off by now. Only those whose announced marks are left are tried again, asking for the lease this time.
        for symbol in self._not_worked_off(held, announced, run, per_read=1):
            self._symbol(symbol, run, unfinished, None, lambda: None)
        self._hand_on(unfinished, run)
        if run.revised:
            # Bars that had been published changed (late or replaced ticks): tell consumers which.
            try:
                detail = BarsRevisedDetail(count=len(run.revised), bars=[
                    RevisedBar(**bar) for bar in run.revised[:MAX_REVISIONS_LISTED]])
                self._events.publish(BARS_REVISED, to_builtins(detail))
            except Exception:
                logger.exception("could not publish BarsRevised")
        run.counts["bars_revised"] = len(run.revised)
        self._metric("BarsWritten", run.counts["bars_written"])
        self._metric("BarsRevised", len(run.revised))
        if run.counts["windows"] or run.counts["handed_on"]:
            logger.info("aggregated", extra=run.counts)
        return dict(run.counts)

    def _not_worked_off(self, symbols: list[str], announced: Sequence[tuple[str, int, str]], run: _Run,
                        per_read: int = SYMBOLS_PER_LOOKUP) -> list[str]:
        """``symbols`` without those whose announced marks are all gone (one read per 100 marks, made only
        when it can spare looking at at least ``per_read`` symbols per read)."""
        wanted = set(symbols)
        marks = [mark for mark in announced if mark[0] in wanted]
        checked = {symbol for symbol, _, _ in marks}
        if not marks or -(-len(marks) // LOOKUP_KEYS) * per_read > len(checked):
            return symbols
        try:
            left = self._dirty.still_marked(marks)
        except Exception:  # only a saving: look at every symbol
            logger.warning("could not look up the announced marks", exc_info=True)
            return symbols
        gone = checked - left
        run.counts["skipped_worked"] += len(gone)
        return [symbol for symbol in symbols if symbol not in gone]

    # ------------------------------------------------------------------ one symbol under its lease
    def _symbol(self, symbol: str, run: _Run, unfinished: list[str], held: list[str] | None,
                backlog: Callable[[], None]) -> None:
        """Work the symbol's marks off under its lease; appended to ``unfinished`` if time ran out with work
        left (to hand it on).

        When another run holds the lease, this run asks for it, which tells that run to look for marks again
        when it lets the lease go, so it finds the ones that made this run come. Given ``held`` (the symbol
        has announced marks), it does not ask yet but appends the symbol to ``held``, to be tried again after
        the others, by when the holder has most likely worked those marks off: an ask makes the holder take
        the lease, list and release once more, and mostly find nothing. ``backlog`` is called when the symbol
        has more marks than one round takes.
        """
        outcome = self._symbol_outcome(symbol, run, held is None, backlog)
        if outcome == "unfinished":
            unfinished.append(symbol)
        elif outcome == "held" and held is not None:
            held.append(symbol)

    def _symbol_outcome(self, symbol: str, run: _Run, ask: bool, backlog: Callable[[], None]) -> str:
        """"done", "unfinished" (time ran out with work left) or "held" (by another run, not asked)."""
        slice_end = min(run.deadline, self._monotonic() + self._settings.symbol_slice_seconds)
        ttl_ns = self._settings.lease_seconds * NS_PER_S
        # Marks first: a symbol with none needs no lease (a mark written after this read is followed by an
        # event of its own, whose run finds it). Marks read here are worked in the first round under the lease:
        # marks are never changed, so a run that worked them meanwhile only makes that round redo equal bars.
        marks: list[DirtyWindow] | None = self._dirty.list_dirty([symbol], self._settings.max_windows_per_run)
        if not marks:
            run.counts["skipped_clean"] += 1
            return "done"
        if len(marks) >= self._settings.max_windows_per_run:
            backlog()
        while True:
            try:
                lease = self._leases.acquire_lease(symbol, self._new_token(), self._clock(), ttl_ns, ask=ask)
            except TransientError:
                logger.warning("could not take or ask for a lease; handing the symbol on", extra={"symbol": symbol})
                return "unfinished"
            if lease is None:
                if not ask:
                    return "held"
                run.counts["skipped_leased"] += 1
                return "done"
            ask = True  # once the lease was this run's, whoever holds it next is asked
            if lease.next_round_ns is not None:  # the previous holder's, from whichever run or process
                run.next_round[symbol] = max(run.next_round.get(symbol, 0), lease.next_round_ns)
            wanted = False
            try:
                finished = self._work(lease, slice_end, ttl_ns, run, marks)
                marks = None
            except LeaseLost:
                run.counts["leases_lost"] += 1
                logger.warning("lease lost; the run that holds it now rebuilds the symbol", extra={"symbol": symbol})
                return "done"
            finally:
                wanted = self._release(lease, run.next_round.get(symbol))
            if not finished or (wanted and self._monotonic() >= slice_end):
                return "unfinished"
            if not wanted:
                return "done"

    def _release(self, lease: Lease, next_round_ns: int | None) -> bool:
        try:
            return self._leases.release_lease(lease, next_round_ns)
        except Exception:  # it expires on its own; until then, runs for this symbol skip it
            logger.exception("could not release a lease", extra={"symbol": lease.symbol})
            return False

    def _work(self, lease: Lease, slice_end: float, ttl_ns: int, run: _Run,
              listed: list[DirtyWindow] | None = None) -> bool:
        """Rounds of (list marks, rebuild, delete the marks) until none is left; False if the slice ended
        first. ``listed``: the marks of the first round, read just before the lease was taken. Marks written
        after the last list made their runs ask for the lease: see _symbol."""
        limit = self._settings.max_windows_per_run
        while True:
            # The lease's withdrawal count must be read after the round's marks are listed (see sources.py):
            # the lease was taken just after ``listed`` was read; otherwise it is renewed after the listing.
            counted_after_listing = listed is not None
            marks = self._dirty.list_dirty([lease.symbol], limit) if listed is None else listed
            listed = None
            if not marks:
                return True
            wait = self._round_wait(lease.symbol, run)
            if wait > 0:
                if self._monotonic() + wait >= slice_end:
                    return False
                self._sleep(wait)  # the marks still arriving are worked off in this round, not in one each
                marks = self._dirty.list_dirty([lease.symbol], limit)
                counted_after_listing = False
            started = self._clock()
            if not counted_after_listing:
                renewed = self._leases.renew_lease(lease, self._clock(), ttl_ns)
                if renewed is None:
                    raise LeaseLost(f"the lease on {lease.symbol} expired")
                lease = renewed
            minutes = sorted({minute for _, minute, _ in marks})
            run.counts["bars_written"] += self._rebuild(lease, minutes, run, marks)
            run.next_round[lease.symbol] = started + self._gap_after(self._clock() - started)
            run.counts["windows"] += len(minutes)
            run.counts["symbols"] += 1
            if len(marks) < limit:  # that was every mark there was
                return True
            if self._monotonic() >= slice_end:
                return False

    def _gap_after(self, took_ns: int) -> int:
        """How long after a round's start the next may start: ``round_gap_seconds``, or three times the round's
        length if longer (a round that rereads much waits longer, so rereading never takes most of the time),
        at most ``round_gap_max_seconds``."""
        gap = max(self._settings.round_gap_seconds, ROUND_COST_FACTOR * took_ns / NS_PER_S)
        return int(min(gap, max(self._settings.round_gap_max_seconds, self._settings.round_gap_seconds)) * NS_PER_S)

    def _round_wait(self, symbol: str, run: _Run) -> float:
        """Seconds until the symbol's next round may start (as this run's last round, or the lease's previous
        holder, left it), never more than the longest gap (clocks differ a little)."""
        after = run.next_round.get(symbol)
        if after is None:
            return 0.0
        longest = max(self._settings.round_gap_max_seconds, self._settings.round_gap_seconds)
        return min(longest, (after - self._clock()) / NS_PER_S)

    def _hand_on(self, symbols: list[str], run: _Run) -> None:
        """Start new runs at once for these symbols (if that fails, the schedule picks them up)."""
        group = self._settings.symbols_per_run
        for i in range(0, len(symbols), group):
            try:
                self._events.publish(AGGREGATION_PENDING, to_builtins(AggregationPendingDetail(
                    symbols=symbols[i : i + group])))
                run.counts["handed_on"] += len(symbols[i : i + group])
            except Exception:
                logger.exception("could not hand on; the scheduled run will aggregate these symbols")

    # ------------------------------------------------------------------ the bars of some minutes
    def _rebuild(self, lease: Lease, minutes: list[int], run: _Run, marks: list[DirtyWindow]) -> int:
        """Rebuild every level over these dirty minutes, write what changed and delete ``marks`` (theirs, all
        in the bar writes' requests when there are any); returns the bars written.

        Each level's stored bars are read over whole windows of the next level, so one read gives both the
        bars to compare with and the children of the next level (with this level's fresh bars substituted).
        """
        symbol = lease.symbol
        wanted = set(minutes)
        grouped: dict[int, list[Bar]] = defaultdict(list)
        partials = [row for lo, hi in _ranges(minutes, RANGE_GAP_NS)
                    for row in self._partials.query_partials(symbol, lo, hi) if row[1].start_ns in wanted]
        known = self._known(lease)
        self._sources.learn((source for source, _ in partials), known)
        for source, partial in partials:
            if self._sources.counts(source, known):
                grouped[partial.start_ns].append(partial)
        self._keep(lease, known, partials)
        fresh: dict[int, Bar | None] = {m: merge_all(grouped[m], "1m", m) if m in grouped else None
                                        for m in minutes}
        latest = max((m for m, b in fresh.items() if b is not None), default=None)
        puts: list[tuple[Bar, int]] = []
        deletes: list[tuple[str, int]] = []
        levels = _levels(minutes)
        stored = self._stored(symbol, levels)
        for level, parent, windows in levels:
            self._diff(symbol, level, fresh, stored[level], puts, deletes, run.revised)
            if parent is None:
                break
            children: dict[int, list[Bar]] = defaultdict(list)
            for start, (kept, _) in stored[level].items():
                if start not in fresh:
                    children[window_start(start, parent)].append(kept)
            for start, rebuilt in fresh.items():
                if rebuilt is not None:
                    children[window_start(start, parent)].append(rebuilt)
            fresh = {w: merge_all(children.get(w, []), parent, w) for w in windows}
        # The symbol's latest bar start only moves forward: one this process stored needs no request.
        if latest is not None and latest <= self._latest_known.get(symbol, -1):
            latest = None
        if puts or deletes:
            self._bars.write_bars(lease, puts, deletes, self._clock(), latest, marks)
        else:
            if latest is not None:
                self._symbols.update_symbol(symbol, latest)
            self._dirty.clear_dirty(marks)
        if latest is not None:
            self._latest_known[symbol] = latest
        return len(puts)

    def _known(self, lease: Lease) -> dict[str, bool]:
        """What this process learnt about requests that count in the symbol's bars, if no withdrawal was noted
        on the symbol since."""
        withdrawals, counting = self._counting.get(lease.symbol, (-1, frozenset()))
        return dict.fromkeys(counting, True) if withdrawals == lease.withdrawals else {}

    def _keep(self, lease: Lease, known: dict[str, bool], partials: list[tuple[str, Bar]]) -> None:
        """Keep, for the symbol's next rounds, which of this round's requests count (never which do not)."""
        seen = {ingestion_of(source) for source, _ in partials}
        self._counting[lease.symbol] = (lease.withdrawals, frozenset(
            i for i in seen if known.get(i) and self._sources.lasting(i)))

    def _stored(self, symbol: str, levels: list[tuple[str, str | None, list[int]]]
                ) -> dict[str, dict[int, tuple[Bar, int]]]:
        """The stored bars each level needs: its bars over whole windows of the next level (the 1d level: just
        its dirty days), in as few requests as the levels allow: the levels with the most keys are queried (a
        level's long stretch in one query each) until the others' keys fit one batch read (a dirty hour: its
        minutes' level queried, the other four read together)."""
        wanted: dict[str, list[int]] = {}
        for level, parent, windows in levels:
            if parent is None:
                wanted[level] = list(windows)
            else:
                step, per = INTERVALS[level], INTERVALS[parent] // INTERVALS[level]
                wanted[level] = [w + k * step for w in windows for k in range(per)]
        stored: dict[str, dict[int, tuple[Bar, int]]] = {level: {} for level, _, _ in levels}
        batched = sum(map(len, wanted.values()))
        for level, parent, windows in sorted(levels, key=lambda entry: -len(wanted[entry[0]])):
            if batched <= GET_BARS_LIMIT:
                break
            batched -= len(wanted.pop(level))
            span = INTERVALS[parent or level]
            for lo, hi in _ranges(windows, max(RANGE_GAP_NS, 2 * span)):
                rows, _ = self._bars.query_bars(symbol, level, lo, hi + span - 1 if parent else hi)
                stored[level].update((bar.start_ns, (bar, rev)) for bar, rev in rows)
        keys = [(level, start) for level, starts in wanted.items() for start in starts]
        if keys:
            for (level, start), row in self._bars.get_bars(symbol, keys).items():
                stored[level][start] = row
        return stored

    @staticmethod
    def _diff(symbol: str, interval: str, fresh: dict[int, Bar | None], stored: dict[int, tuple[Bar, int]],
              puts: list[tuple[Bar, int]], deletes: list[tuple[str, int]], revised: list[dict[str, Any]]) -> None:
        """Bars that changed (revision bumped) and bars whose window is now empty; published bars that change
        are appended to ``revised``. A bar equal to the stored one keeps its revision."""
        for start in sorted(fresh):
            bar, old = fresh[start], stored.get(start)
            if bar is None:
                if old is not None:
                    deletes.append((interval, start))
                    revised.append({"symbol": symbol, "interval": interval, "start": format_ns(start),
                                    "revision": None})
            elif old is None:
                puts.append((bar, 1))
            elif not bar.same_values(old[0]) or bar.open_key != old[0].open_key or bar.close_key != old[0].close_key:
                puts.append((bar, old[1] + 1))
                revised.append({"symbol": symbol, "interval": interval, "start": format_ns(start),
                                "revision": old[1] + 1})
