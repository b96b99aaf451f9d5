"""DynamoDB read answers written with one ``json.dumps``, for the emulator and moto in-process.

moto serialises every answer by walking the operation's output shape member by member, looking each value up
through a generic attribute picker: about 0.5 ms per item of fifteen attributes, so a Query of 5,000 bars spent
seconds in it, and converting its items to plain dicts generically a few tenths more. The answers of Query,
Scan, GetItem and BatchGetItem are plain JSON values under the wire names (items as AttributeValue maps,
counts, keys), so ``json.dumps`` gives the same document; items of plain types convert directly. Binary
attributes (raw bytes, which moto's serializer base64-encodes), datetimes and errors still take moto's path;
tests/integration/test_moto_fixes_dynamodb.py checks both paths give the same answers.
"""

from __future__ import annotations

import json
from typing import Any

FAST_ACTIONS = frozenset(("Query", "Scan", "GetItem", "BatchGetItem"))
CONTENT_TYPE = "application/x-amz-json-1.0"  # DynamoDB's JSON protocol version


def _without_none(result: dict[str, Any]) -> dict[str, Any]:
    """moto's serializer leaves out members whose value is None; so does this (at the top, where they occur)."""
    return {key: value for key, value in result.items() if value is not None}


def _json_serialized(original: Any) -> Any:
    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if isinstance(result, dict) and self._get_action() in FAST_ACTIONS:
            try:
                body = json.dumps(_without_none(result), separators=(",", ":"))
            except TypeError:  # bytes or datetimes: moto's serializer encodes them
                return original(self, action_result)
            return 200, {"Content-Type": CONTENT_TYPE, **self.response_headers}, body
        return original(self, action_result)

    serialized.plain_json = True  # type: ignore[attr-defined]
    return serialized


# AttributeValue types whose moto value is already its wire value (strings, lists of strings, booleans).
PLAIN_TYPES = frozenset(("S", "N", "SS", "NS", "BOOL", "NULL"))
SCALAR_TYPES = frozenset(("S", "N", "BOOL", "NULL"))


def plain(obj: Any) -> Any:
    """moto's ``dynamo_to_dict`` (DynamoType values to their wire dicts), with the common shapes converted
    directly: a result dict, lists of items, items, and attributes of the plain types."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import dynamo_to_dict

    kind = type(obj)
    if kind is DynamoType:
        if obj.type in PLAIN_TYPES:
            value = obj.value
            return {obj.type: list(value) if isinstance(value, list) else value}
        return dynamo_to_dict(obj)
    if isinstance(obj, dict) and not hasattr(obj, "to_json"):  # items are dict subclasses
        out = {}
        for key, value in obj.items():  # an item's attributes inline: one call per item, not per attribute
            if type(value) is DynamoType and value.type in SCALAR_TYPES:
                out[key] = {value.type: value.value}
            else:
                out[key] = plain(value)
        return out
    if kind is list:
        return [plain(value) for value in obj]
    if kind in (str, int, float, bool) or obj is None:
        return obj
    return dynamo_to_dict(obj)


def _plain_result_init(self: Any, result: object) -> None:
    from moto.core.responses import ActionResult

    ActionResult.__init__(self, plain(result))


def install() -> None:
    """Answer DynamoDB reads with plain JSON in this process (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    if getattr(DynamoHandler.serialized, "plain_json", False):
        return
    DynamoResult.__init__ = _plain_result_init  # type: ignore[method-assign]
    DynamoHandler.serialized = _json_serialized(DynamoHandler.serialized)  # type: ignore[method-assign]
