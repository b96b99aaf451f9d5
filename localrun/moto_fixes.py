"""moto's costs made what they are in AWS, for the local stack and the tests: five of DynamoDB's, three of SQS's,
one of EventBridge's and one of the server's.

- Query reads the items of its partition key only. moto's sorts the whole table on every Query, so the local
  stack slowed down as the table grew (the aggregator's queries took most of its time). A Query of the
  table's own key with no filter or projection goes further (moto_table_query.py): it starts where its range
  starts and copies nothing, so a page costs what it returns.
- TransactWriteItems without copying whole tables. moto's own deep-copies every table a transaction names,
  once per item, to roll back on failure: with tens of thousands of items, one transaction of 100 bars took
  seconds and the callers timed out. This one checks every condition first and writes only if all hold (what
  DynamoDB does), backs up just the items it writes, and undoes them if a write fails. Atomic against other
  requests only together with emulator.py's serialisation of DynamoDB requests.
- An item is sized once when it is built. moto's item dict sizes the whole item again at each attribute it
  sets, so building an item of n attributes cost n² sizings (about 0.1 ms for a bar, on every write); the
  400 KB limit is checked the same, on the whole item.
- DynamoDB reads answered with one ``json.dumps`` instead of moto's shape walk (moto_json_reads.py): a Query
  of 5,000 bars took seconds to serialise.
- DynamoDB requests read with one ``json.loads`` where that gives the same parameters (moto_json_requests.py):
  moto's shape walk was a third of the emulator's time on the processors' BatchWriteItem of partials.
- SQS sends and receives without counting the queue. moto reads a queue's attribute dict, whose
  ``ApproximateNumberOf*`` entries scan every message, on every message sent (for ContentBasedDeduplication)
  and three times per message received (for MessageRetentionPeriod): with a backlog of thousands of messages the
  local stack spent most of its time there. Those reads now build the dict without the counts; a
  GetQueueAttributes that asks for counts (or for All) still gets them, as exact as before.
- SQS receives that stop at the messages they take. moto's receive first lists every visible message of the
  queue (two clock reads per message), then takes the first ten: with a backlog, each receive and each second
  of a long poll scanned it all. The visible messages are now read lazily, in the same order, so a receive
  looks only as far as it takes; a count of them is still exact.
- SQS queues that keep every message. moto's delete rebuilt a queue's message list without its lock and put
  it back, so a message sent at that moment was dropped after its sender was told it was queued (seen under
  load: 2 of 4,702 requests answered 202 were never processed). A delete now removes its message in place,
  under the lock sends take, and stops scanning at it. Receives took no lock either, so two at once could
  take the same message: each look at the queue is now under that lock (a long poll waits without it).
- The server's routing lists moto's package folder once, not for every request.
- An EventBridge rule's input paths parsed once. moto parses each JSONPath of the rule's target again for
  every event delivered (a parser generator run each time); the parsed paths are now kept, by their text.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from typing import Any

from . import moto_json_reads, moto_json_requests, moto_table_query


def fast_transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    plan: list[tuple[str, dict[str, Any], str, dict[str, Any], Any]] = []
    errors: list[Any] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        table_name = op["TableName"]
        if op_type == "Put":
            table = self.get_table(table_name)
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        marker = (str(table_name), str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        failed = None
        if condition is not None:
            expr = get_filter_expression(condition, op.get("ExpressionAttributeNames"),
                                         op.get("ExpressionAttributeValues"))
            if not expr.expr(current):
                old = (current.to_json()["Attributes"] if current and
                       op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None)
                failed = ("ConditionalCheckFailed", "The conditional request failed", old)
        errors.append(failed or (None, None, None))
        plan.append((op_type, op, table_name, key, copy.deepcopy(current)))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    done = []
    try:
        for op_type, op, table_name, key, before in plan:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"], expression_attribute_names=names,
                              expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, expression_attribute_names=names,
                                 expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)
            done.append((table_name, key, before))
    except Exception:
        for table_name, key, before in reversed(done):  # undo what was applied
            if before is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before.to_json()["Attributes"])
        raise


def _sized_once_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    self.hash_key = hash_key
    self.range_key = range_key
    self.attrs = LimitedSizeDict()
    values = {}
    size = 0
    for key, value in attrs.items():
        # A string or number (most attributes) is built and sized directly: the same value, the same size.
        kind = next(iter(value)) if type(value) is dict and len(value) == 1 else None
        if kind == "S" or kind == "N":
            scalar = value[kind]
            typed = DynamoType.__new__(DynamoType)
            typed.type, typed.value = kind, scalar
            size += len(key.encode()) + (len(scalar.encode()) if kind == "S" else len(str(scalar)))
        else:
            typed = DynamoType(value)
            size += bytesize(key) + typed.size()
        values[key] = typed
    if size > ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    dict.update(self.attrs, values)


_STATIC_ONLY = threading.local()


def _uncounted_attributes(original: Any) -> Any:
    """Queue.attributes, skipping the message counts while a caller that reads no count is on the stack."""

    def attributes(self: Any) -> dict[str, Any]:
        if not getattr(_STATIC_ONLY, "on", False):
            return original(self)
        from moto.core.utils import camelcase_to_underscores

        names = [a for a in self.BASE_ATTRIBUTES if not a.startswith("Approximate")]
        if self.fifo_queue:
            names += self.FIFO_ATTRIBUTES
        if self.kms_master_key_id:
            names += self.KMS_ATTRIBUTES
        result: dict[str, Any] = {name: getattr(self, camelcase_to_underscores(name)) for name in names}
        if self.policy:
            result["Policy"] = self.policy
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy)
        return {k: str(v).lower() if isinstance(v, bool) else v for k, v in result.items()}

    attributes.uncounted = True  # type: ignore[attr-defined]
    return property(attributes)


def _without_counts(method: Any, needs_counts: Any = None) -> Any:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        if needs_counts is not None and needs_counts(*args, **kwargs):
            return method(*args, **kwargs)
        previous = getattr(_STATIC_ONLY, "on", False)
        _STATIC_ONLY.on = True
        try:
            return method(*args, **kwargs)
        finally:
            _STATIC_ONLY.on = previous

    call.uncounted = True  # type: ignore[attr-defined]
    return call


def _asks_for_counts(_self: Any, _queue_name: str, attribute_names: Any, *_: Any, **__: Any) -> bool:
    return any(name == "All" or name.startswith("Approximate") for name in attribute_names)


class _VisibleMessages:
    """A queue's visible, undelayed messages (moto's ``Queue.messages``) in queue order, read as they are
    iterated: a receive that stops at its tenth message has looked at no more of the queue than that."""

    __slots__ = ("_messages",)

    def __init__(self, messages: list[Any]) -> None:
        self._messages = messages

    def __iter__(self) -> Any:
        from moto.core.utils import unix_time_millis

        for message in list(self._messages):  # a copy: the receive moves messages to the dead-letter queue
            now = unix_time_millis()
            if now > message.visible_at and not now < message.delayed_until:
                yield message

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None


def _visible_messages(self: Any) -> _VisibleMessages:
    return _VisibleMessages(self._messages)


def _delete_in_place(self: Any, receipt_handle: str) -> None:
    """Queue.delete_message, under the queue's lock (the one sends take) and in place. moto's rebuilt the message
    list without the lock and assigned it back: a message sent meanwhile (appended to the old list) was lost,
    with its sender told it was queued. It also read the whole queue twice per receipt; the message deleted is
    almost always among the first (received in queue order), so this stops there. The scan reads a copy, and the
    message is removed by identity: a receive moving messages to the dead-letter queue takes no lock."""
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    with self._messages_lock:
        if receipt_handle in self.deleted_messages:
            return  # deleted already: deleting again is allowed
        for message in list(self._messages):
            if message.had_receipt_handle(receipt_handle):
                break
        else:
            raise ReceiptHandleIsInvalid()
        self._messages.remove(message)  # a handle names one message (moto's are unique)
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)


def _receive_under_lock(receive: Any) -> Any:
    """SQSBackend.receive_message with each look at the queue under the queue's lock, so that two receives at
    once never take the same message (moto's checks that a message is visible, then marks it received, with no
    lock between). A long poll waits between looks without the lock, as moto's does, so sends go on."""
    from moto.core.utils import unix_time

    @functools.wraps(receive)
    def receive_message(self: Any, queue_name: str, count: int, wait_seconds_timeout: int, visibility_timeout: int,
                        message_attribute_names: list[str] | None = None) -> Any:
        queue = self.get_queue(queue_name)
        polling_end = unix_time() + wait_seconds_timeout
        while True:
            with queue._messages_lock:
                result = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            if result or not wait_seconds_timeout or unix_time() > polling_end:
                return result
            queue.wait_for_messages(1)

    receive_message.locked = True  # type: ignore[attr-defined]
    return receive_message


def _cached_jsonpath() -> None:
    import jsonpath_ng.ext

    if getattr(jsonpath_ng.ext.parse, "cached", False):
        return
    cached = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)
    cached.cached = True  # type: ignore[attr-defined]
    jsonpath_ng.ext.parse = cached  # moto's EventTemplateParser imports it at each call


def _install_sqs() -> None:
    from moto.sqs.models import Queue, SQSBackend

    current: Any = Queue.__dict__["attributes"]
    if getattr(current.fget, "uncounted", False):
        return
    setattr(Queue, "messages", property(_visible_messages))  # noqa: B010 - a property, replaced
    Queue.delete_message = _delete_in_place  # type: ignore[method-assign]
    SQSBackend.receive_message = _receive_under_lock(SQSBackend.receive_message)  # type: ignore[method-assign]
    setattr(Queue, "attributes", _uncounted_attributes(current.fget))  # noqa: B010 - a property, replaced
    SQSBackend.send_message = _without_counts(SQSBackend.send_message)  # type: ignore[method-assign]
    SQSBackend.get_queue_attributes = _without_counts(  # type: ignore[method-assign]
        SQSBackend.get_queue_attributes, _asks_for_counts)


# moto's limit (between the documented 400 KB and the measured 409-410 KB).
ITEM_SIZE_LIMIT = 405000


def _listed_once() -> None:
    """moto's server lists its own package folder (a listdir and a stat per entry) for every request it routes;
    the folder does not change while it runs."""
    from moto import backends

    if not isinstance(backends.list_of_moto_modules, functools._lru_cache_wrapper):
        modules = backends.list_of_moto_modules
        backends.list_of_moto_modules = functools.cache(lambda: tuple(modules()))


def install() -> None:
    """Use all of them for every DynamoDB and SQS backend of this process (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    Item.__init__ = _sized_once_init  # type: ignore[method-assign]
    _install_sqs()
    _cached_jsonpath()
    _listed_once()
    moto_json_reads.install()
    moto_json_requests.install()

    DynamoDBBackend.transact_write_items = fast_transact_write_items  # type: ignore[method-assign]
    if not getattr(Table.query, "partition_only", False):
        Table.query = _partition_query(Table.query)  # type: ignore[method-assign]


def _partition_query(query: Any) -> Any:
    """A Query on the table itself (no index) looks at its partition's items, sorted by sort key, instead of
    at the whole table sorted: the same results, since moto keeps items by partition key."""

    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or not self.range_key_attr or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        if moto_table_query.is_simple(self, hash_key, args, kwargs):
            return moto_table_query.query(self, hash_key, *args, **kwargs)
        partition = self.items.get(hash_key, {})  # get: the items are a defaultdict
        self.all_items = lambda: sorted(partition.values(), key=lambda item: item.range_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    partition_query.partition_only = True  # type: ignore[attr-defined]
    return partition_query
