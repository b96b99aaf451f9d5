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

The command line is ``python -m moto.server``'s.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.responses import DynamoHandler
from moto.server import main as moto_server_main

from . import moto_fixes

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


def main(argv: list[str] | None = None) -> None:
    serialise_dynamodb()
    moto_fixes.install()
    moto_server_main(argv)


if __name__ == "__main__":
    main()
