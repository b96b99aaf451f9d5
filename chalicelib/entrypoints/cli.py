"""The operator's command line (`python -m chalicelib.cli`): ingestion status, dead-letter queue, replay, recompute,
and a chart of a symbol's bars as a self-contained HTML file.

A thin entry point: parse the arguments, get the stage's operator commands from the composition root, call
one (chalicelib/usecases/operator.py), print its result as one JSON object on stdout. A failure ends with a
one-line message on stderr and exit code 1 (2 for bad arguments). Clients are built by boto3 the normal way, so
AWS_ENDPOINT_URL=http://127.0.0.1:5000 (with test credentials) points it at the local stack and plain AWS
credentials at AWS; the stage's resource names come from chalicelib.settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..bootstrap import operations
from ..chart import render_embedded_page
from ..domain.bars import INTERVALS
from ..domain.errors import InputError, OperationIncomplete, PipelineError
from ..domain.queries import DEFAULT_INTERVAL, MAX_BAR_LIMIT
from ..domain.text import parse_whole_number
from ..domain.timefmt import NS_PER_S, format_ns
from ..observability import logger
from ..settings import Settings, stage_settings
from ..usecases.operator import DEFAULT_MAX, Operations
from ..usecases.queries import ReadBars
from .api import read_bars

EXIT_FAILED = 1
EXIT_USAGE = 2


def _whole_number(raw: str) -> int:
    """An option's count, written with the digits 0-9 only (int() would also take "1_0" and "١٠")."""
    try:
        return parse_whole_number(raw, 0, 10**9)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def write_chart(read: ReadBars, symbol: str, interval: str, start: str | None, end: str | None, out: Path,
                now_ns: int) -> dict[str, Any]:
    """Every bar of the query, read page after page as GET /bars answers it, written to ``out`` as a chart
    page that carries them (chalicelib/chart); what was written."""
    params = {"symbol": symbol, "interval": interval, "limit": str(MAX_BAR_LIMIT)}
    params.update({name: value for name, value in (("start", start), ("end", end)) if value})
    bars: list[dict[str, Any]] = []
    while True:
        page = read_bars(params, read)
        bars.extend(page["bars"])
        if page["next"] is None:
            break
        params["next"] = page["next"]
    data = render_embedded_page(page["symbol"], page["interval"], bars,
                                format_ns(now_ns - now_ns % NS_PER_S)).encode("utf-8")
    out.write_bytes(data)
    return {"out": str(out), "symbol": page["symbol"], "interval": page["interval"], "bars": len(bars),
            "first": bars[0]["start"] if bars else None, "last": bars[-1]["start"] if bars else None,
            "bytes": len(data)}


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the command, these override; not given there, they leave the top level's value.
    common.add_argument("--stage", default=argparse.SUPPRESS,
                        help="stage to act on (default: env STAGE, else dev)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress (JSON lines) on stderr")
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.cli",
        description="Operate the market-data pipeline of a stage. Prints one JSON object.",
        epilog="Local stack: AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=testing "
               "AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 python -m chalicelib.cli ...",
    )
    # Not parents=[common]: parents share their action objects, and these defaults must not reach the commands.
    parser.add_argument("--stage", default=None, help="stage to act on (default: env STAGE, else dev)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (JSON lines) on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser("status", parents=[common], help="an ingestion's status (as GET /ingestions/{id})")
    status.add_argument("ingestion_id")
    status.set_defaults(run=lambda ops, a: ops.status(a.ingestion_id))

    dlq = commands.add_parser("dlq", parents=[common], help="the dead-letter queue of the processing queue")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = dlq_commands.add_parser("list", parents=[common], help="show messages and leave them in the queue")
    listing.add_argument("--max", type=_whole_number, default=DEFAULT_MAX,
                         help=f"at most N messages (default {DEFAULT_MAX})")
    listing.set_defaults(run=lambda ops, a: ops.dlq.list(a.max))
    redrive = dlq_commands.add_parser(
        "redrive", parents=[common], help="move messages back to the processing queue (preview without --yes)")
    redrive.add_argument("--max", type=_whole_number, default=DEFAULT_MAX,
                         help=f"at most N messages (default {DEFAULT_MAX})")
    redrive.add_argument("--yes", action="store_true", help="really move them")
    redrive.set_defaults(run=lambda ops, a: ops.dlq.redrive(a.max, a.yes))

    replay = commands.add_parser(
        "replay", parents=[common],
        help="ingest the objects under a prefix again, as the S3 trigger would (preview without --yes)")
    replay.add_argument("--prefix", required=True, help="key prefix in the stage's bucket, e.g. incoming/2024-07-01/")
    replay.add_argument("--since", help="only objects last modified at or after this time (ISO 8601)")
    replay.add_argument("--until", help="only objects last modified before this time (ISO 8601)")
    replay.add_argument("--max", type=_whole_number, default=DEFAULT_MAX,
                        help=f"at most N objects (default {DEFAULT_MAX})")
    replay.add_argument("--yes", action="store_true", help="really queue them")
    replay.set_defaults(run=lambda ops, a: ops.replay(a.prefix, a.since, a.until, a.max, a.yes))

    recompute = commands.add_parser(
        "recompute", parents=[common], help="rebuild a symbol's bars over a time range from its partial aggregates")
    recompute.add_argument("--symbol", required=True)
    recompute.add_argument("--start", help="first minute (ISO 8601; default: the beginning)")
    recompute.add_argument("--end", help="end of the range, exclusive (ISO 8601; default: no end)")
    recompute.set_defaults(run=lambda ops, a: ops.recompute(a.symbol, a.start, a.end))

    chart = commands.add_parser(
        "chart", parents=[common],
        help="write a symbol's bars as a candlestick chart: one HTML file that needs no network to open")
    chart.add_argument("--symbol", required=True)
    chart.add_argument("--interval", choices=list(INTERVALS), default=DEFAULT_INTERVAL,
                       help=f"bar interval (default {DEFAULT_INTERVAL})")
    chart.add_argument("--start", help="first bar start (ISO 8601; default: the beginning)")
    chart.add_argument("--end", help="end of the range, exclusive (ISO 8601; default: no end)")
    chart.add_argument("--out", required=True, type=Path, help="the HTML file to write (replaced if it exists)")
    chart.set_defaults(run=lambda ops, a: write_chart(ops.read_bars, a.symbol, a.interval, a.start, a.end, a.out,
                                                      time.time_ns()))
    return parser


@contextmanager
def _logs_to_stderr(verbose: bool) -> Iterator[None]:
    """Keep stdout for the result: the pipeline's logger writes to stdout (for Lambda) and at INFO."""
    handler = logger.registered_handler
    level = logger.log_level
    stream = handler.setStream(sys.stderr) if hasattr(handler, "setStream") else None
    logger.setLevel("INFO" if verbose else "WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)
        if stream is not None and hasattr(handler, "setStream"):
            handler.setStream(stream)


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None,
         operations_for: Callable[[Settings], Operations] = operations) -> int:
    """Run one command; ``operations_for`` builds the stage's commands (tests pass in-memory ones)."""
    args = _parser().parse_args(argv)
    settings = stage_settings(args.stage)
    run: Callable[[Operations, argparse.Namespace], dict[str, Any]] = args.run
    try:
        with _logs_to_stderr(args.verbose):
            result = run(operations_for(settings), args)
    except OperationIncomplete as exc:
        print(json.dumps(exc.result, indent=2))
        return _fail(exc.message)
    except InputError as exc:
        return _fail(exc.message, EXIT_USAGE)
    except PipelineError as exc:
        return _fail(exc.message)
    except (ClientError, BotoCoreError) as exc:
        return _fail(f"{exc} (stage {settings.stage})")
    except OSError as exc:  # e.g. the chart's --out cannot be written
        return _fail(str(exc))
    except Exception as exc:
        if args.verbose:
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with --verbose for the traceback)")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
