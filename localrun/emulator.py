"""`python -m localrun.emulator -H HOST -p PORT`: the moto server, with every DynamoDB request atomic.

DynamoDB applies each request atomically, whatever else is in flight: an UpdateItem ``ADD``, a conditional
PutItem, DeleteItem or UpdateItem, each item of a BatchWriteItem, a TransactWriteItems. moto's server answers
requests on many threads and its DynamoDB backend takes no lock, so concurrent requests interleave: increments
are lost, two conditional puts on one new key can both succeed, and a cancelled TransactWriteItems puts back a
copy of the whole table taken when it started, undoing every write other requests made meanwhile (or fails
with a 500 when the table changes while it is copied). The local stack runs processors and aggregators
concurrently, so it needs DynamoDB's guarantee.

Every DynamoDB request the server receives goes ``DomainDispatcherApplication`` -> the dynamodb Flask app ->
``DynamoHandler.dispatch`` -> ``BaseResponse._dispatch`` (parse the request) -> ``DynamoHandler.call_action``
(authorise, run the operation on the backend, serialise the answer). One process-wide lock around
``call_action`` therefore serialises every DynamoDB operation, PartiQL included, while requests are still read
and parsed in parallel. Only DynamoDB is serialised: DynamoDB Streams, S3, SQS, EventBridge and the other
services run as moto runs them.

With ``--state-dir``, the emulator also keeps its state there (see ``localrun.persistence``): it restores the
folder's snapshot before it serves the first request, saves what changed every few seconds, and saves once
more when it is told to stop (SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from . import moto_fixes
from . import persistence_dynamodb as dynamodb_state
from .persistence import SERVICES, Saver, SharedExclusiveLock, StateRefused, StateStore

_DYNAMODB_LOCK = threading.Lock()


def serialise_dynamodb() -> None:
    """Make every DynamoDB operation of this process run alone (idempotent)."""
    call_action = DynamoHandler.call_action
    if getattr(call_action, "serialised", False):
        return

    @functools.wraps(call_action)
    def serialised_call_action(self: DynamoHandler) -> Any:
        with _DYNAMODB_LOCK:
            return call_action(self)

    serialised_call_action.serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = serialised_call_action  # type: ignore[method-assign]


_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_DYNAMODB_READS = frozenset((
    "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "DescribeTable", "ListTables",
    "DescribeTimeToLive", "DescribeContinuousBackups", "ListTagsOfResource", "DescribeEndpoints"))


def written_services(environ: dict[str, Any]) -> tuple[str, ...]:
    """The persisted services a request may change (all of them when it cannot tell)."""
    method = environ.get("REQUEST_METHOD", "GET")
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", "") or "")
    service = match.group(1) if match else None
    if service is None:
        credential = re.search(r"X-Amz-Credential=[^&]*?%2F\d{8}%2F[^%]+%2F([^%]+)%2F", environ.get("QUERY_STRING", ""))
        service = credential.group(1) if credential else None
    if service == "dynamodb":
        action = (environ.get("HTTP_X_AMZ_TARGET") or "").rpartition(".")[2]
        return () if action in _DYNAMODB_READS else ("dynamodb",)
    if service == "s3":  # a write also notifies EventBridge, whose rules target queues
        return () if method in ("GET", "HEAD") else ("s3", "sqs")
    if service == "events":  # PutEvents lands on the rules' target queues
        return ("sqs",)
    if service in SERVICES:
        return (service,)
    if service is not None or method in ("GET", "HEAD"):
        return ()  # another service, or a read of the emulator's own API
    return SERVICES


class PersistentApplication:
    """moto's WSGI application, each request run under the snapshot lock and noted for the next save."""

    def __init__(self, app: DomainDispatcherApplication, lock: SharedExclusiveLock, saver: Saver) -> None:
        self._app = app
        self._lock = lock
        self._saver = saver

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock.shared():
            # The answer is built before it returns (moto answers with bytes), so the snapshot cannot cut it;
            # the services it changed are noted before a snapshot can start.
            try:
                return list(self._app(environ, start_response))
            finally:
                for service in written_services(environ):
                    self._saver.mark(service)


def _long_polls_outside_the_lock(lock: SharedExclusiveLock) -> None:
    """An SQS ReceiveMessage that waits for messages leaves the shared section while it waits."""
    from moto.sqs.models import Queue

    wait = Queue.wait_for_messages
    if getattr(wait, "paused", False):
        return

    @functools.wraps(wait)
    def paused_wait(self: Any, timeout: int) -> None:
        with lock.paused():
            wait(self, timeout)

    paused_wait.paused = True  # type: ignore[attr-defined]
    Queue.wait_for_messages = paused_wait  # type: ignore[method-assign]


def _log(message: str) -> None:
    print(f"emulator: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localrun.emulator", description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--state-dir", type=Path, help="keep the state in this folder (default: keep nothing)")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    parser.add_argument("--save-seconds", type=float, default=2.0,
                        help="save what changed this often, at most (default 2)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    serialise_dynamodb()
    moto_fixes.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app: Any = DomainDispatcherApplication(create_backend_app)
    saver: Saver | None = None
    if args.state_dir is not None:
        store = StateStore(args.state_dir, args.region, dynamodb_state.TRACKER)
        try:
            store.lock_folder()
            restored = store.load()
        except StateRefused as exc:
            _log(str(exc))
            return 3
        dynamodb_state.install()
        if restored:
            _log("restored " + ", ".join(f"{service} ({n})" for service, n in sorted(restored.items()))
                 + f" from {args.state_dir}")
        lock = SharedExclusiveLock()
        _long_polls_outside_the_lock(lock)
        saver = Saver(store, lock, args.save_seconds, _log)
        app = PersistentApplication(app, lock, saver)
        saver.start()

    def stop(signum: int, _frame: Any) -> None:
        # Once only: a second signal must not re-enter a save (it would wait on the first one's locks).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if saver is not None:
            try:
                saver.stop()
            except Exception as exc:  # say why the last changes are not saved, then exit
                _log(f"the last save failed: {exc!r}; what changed since the previous save is lost")
                os._exit(4)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
