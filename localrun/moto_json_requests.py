"""DynamoDB requests read with one ``json.loads``, for the emulator and moto in-process.

moto turns a request's body into its parameters by walking the operation's input shape member by member:
about 4 ms for a BatchWriteItem of 25 partials, a third of what the emulator spends on it, and the largest
single cost of a backfill on the local stack. For DynamoDB's JSON protocol the walk changes the plain JSON
only in a few places: it decodes binary attributes (``B``, ``BS``: base64 text to bytes), timestamps and
floats, and it leaves out nulls and members the shape does not name. The data-plane operations below carry
no timestamp or float, so a body with no ``B``/``BS`` key, no ``null`` and no top-level member its operation
does not name has exactly the parameters ``json.loads`` gives; any other body takes moto's path.
tests/integration/test_moto_fixes_dynamodb.py checks the two give the same parameters.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

FAST_ACTIONS = frozenset((
    "BatchWriteItem", "TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem",
    "GetItem", "BatchGetItem", "Query", "Scan",
))
# Conservative: a key "B" or "BS" anywhere (an attribute so named too), or "null" anywhere (in a string too).
_DOUBT = re.compile(rb'"BS?"\s*:|null')


@cache
def _members(action: str) -> frozenset[str]:
    from moto.core.responses import get_service_model

    shape = get_service_model("dynamodb").operation_model(action).input_shape
    return frozenset(shape.members) if shape is not None else frozenset()


def plain_parameters(action: str, body: bytes) -> dict[str, Any] | None:
    """The parameters of a request body, when ``json.loads`` gives them as moto's parser would; else None."""
    if action not in FAST_ACTIONS or not body or _DOUBT.search(body):
        return None
    try:
        params = json.loads(body)
    except ValueError:
        return None
    if not isinstance(params, dict) or not params.keys() <= _members(action):
        return None
    return params


def _json_parameters(original: Any) -> Any:
    def parse_parameters(self: Any, request: Any) -> None:
        params = plain_parameters(self._get_action(), request.data)
        if params is None:
            original(self, request)
        else:
            self.params = params

    parse_parameters.plain_json = True  # type: ignore[attr-defined]
    parse_parameters.original = original  # type: ignore[attr-defined]
    return parse_parameters


def install() -> None:
    """Read DynamoDB request bodies with json.loads in this process where that is exact (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.parse_parameters, "plain_json", False):
        return
    DynamoHandler.parse_parameters = _json_parameters(DynamoHandler.parse_parameters)  # type: ignore[method-assign]
