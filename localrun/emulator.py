"""`python -m localrun.emulator -H HOST -p PORT`: the moto server, with every DynamoDB request atomic.

DynamoDB applies each request atomically: an UpdateItem ``ADD``, a conditional PutItem, DeleteItem or
UpdateItem, a BatchWriteItem item and a TransactWriteItems all take effect whole or not at all, whatever else
is in flight. moto's server answers requests on many threads and its DynamoDB backend takes no lock, so
concurrent writes to one item interleave (a counter bumped 480 times by 16 threads ends well short of 480, and
two conditional puts on one new key can both succeed). The local stack runs processors and aggregators
concurrently, so it needs DynamoDB's guarantee.

Every DynamoDB request the server receives goes DomainDispatcherApplication -> the dynamodb Flask app ->
``DynamoHandler.dispatch`` -> ``BaseResponse._dispatch`` (parse the request) -> ``DynamoHandler.call_action``
(run the operation on the backend, serialise the answer). Wrapping ``call_action`` in one process-wide lock
therefore serialises every DynamoDB operation, PartiQL included, while the requests are still read and parsed in
parallel. Only DynamoDB is serialised: DynamoDB Streams, S3, SQS, EventBridge and the rest run as moto runs them.

Everything else, command line included, is ``python -m moto.server``'s.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.responses import DynamoHandler
from moto.server import main as moto_server_main

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
    moto_server_main(argv)


if __name__ == "__main__":
    main()
