"""A Query of a table's own key (no index, filter or projection) answered in time proportional to its answer.

moto's ``Table.query`` sorts the partition with a Python comparison per pair of items, walks it from the
beginning, sizes each item twice and deep-copies every item it returns: a page of 5,000 bars took half a
second in it. This one sorts by the sort key's value (the order moto's comparisons give), finds where the page
begins by bisection, and hands out the stored items themselves: the answer is serialised from them within the
same request, before any other DynamoDB request runs (the emulator serialises them, see emulator.py). Anything
else (an index, a filter, a projection, legacy QueryFilter conditions) still takes moto's own path.

Its answers are moto's: the same items in the same order, Limit counted over matching items, pages cut at
moto's 1 MB, the same LastEvaluatedKey and ScannedCount (tests/integration/test_moto_fixes_dynamodb.py).
"""

from __future__ import annotations

from typing import Any

# Key conditions whose matches are one run of the sort order (None: the whole partition).
RUN_COMPARISONS = frozenset((None, "EQ", "=", "LE", "<=", "LT", "<", "GE", ">=", "GT", ">", "BETWEEN", "BEGINS_WITH"))


def is_simple(table: Any, hash_key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a call ``Table.query(hash_key, *args, **kwargs)`` can be answered here."""
    from moto.dynamodb.comparisons import OpDefault

    names = ("range_comparison", "range_objs", "limit", "exclusive_start_key", "scan_index_forward",
             "projection_expressions", "index_name", "consistent_read", "filter_expression")
    given = dict(zip(names, args, strict=False))
    extra = {k: v for k, v in kwargs.items() if k not in (*names, "hash_key_conditions", "range_key_conditions")}
    given.update({k: v for k, v in kwargs.items() if k in names})
    filter_expression = given.get("filter_expression")
    range_conditions = kwargs.get("range_key_conditions") or []
    return (hash_key is not None and table.range_key_attr is not None and not extra
            and given.get("range_comparison") in RUN_COMPARISONS
            and not given.get("index_name") and not given.get("projection_expressions")
            and (filter_expression is None or isinstance(filter_expression, OpDefault))
            and len(range_conditions) <= 1
            and len(kwargs.get("hash_key_conditions") or []) <= 1)


def query(table: Any, hash_key: Any, range_comparison: str | None, range_objs: list[Any], limit: int | None,
          exclusive_start_key: dict[str, Any] | None, scan_index_forward: bool, *_: Any,
          **__: Any) -> tuple[list[Any], int, dict[str, Any] | None]:
    """(items, scanned count, last evaluated key) as moto's Table.query answers a simple query."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT

    partition = table.items.get(hash_key, {})  # get: the items are a defaultdict
    keyed = sorted(((_sort_value(item.range_key), item) for item in partition.values()), key=lambda pair: pair[0])
    if not scan_index_forward:
        keyed.reverse()
    values = [obj.cast_value for obj in range_objs]
    # Matching items are one run of the order: skip what lies before it (it could stop nothing: the page is
    # still empty there) and start past the exclusive start key.
    begin = _first_false(keyed, _before_run(range_comparison, values, scan_index_forward))
    if exclusive_start_key is not None:
        after = DynamoType(exclusive_start_key[table.range_key_attr]).cast_value
        passed = (lambda k: k <= after) if scan_index_forward else (lambda k: k >= after)
        begin = max(begin, _first_false(keyed, passed))
    results: list[Any] = []
    size = 0
    last_key = None
    for _key, item in keyed[begin:]:
        item_size = item_size_of(item)
        if len(results) == limit or size + item_size > RESULT_SIZE_LIMIT:
            last_key = table._get_last_evaluated_key(results[-1], None)
            break
        if range_comparison and not item.range_key.compare(range_comparison, range_objs):
            break  # the end of the run: nothing after it matches
        results.append(item)
        size += item_size
    return results, len(results), last_key


def _sort_value(key: Any) -> Any:
    """What moto compares sort keys by (DynamoType.cast_value), without its type tests for a string."""
    return key.value if key.type == "S" else key.cast_value


def item_size_of(item: Any) -> int:
    """moto's Item.size(), with strings and numbers sized directly."""
    from moto.dynamodb.models.utilities import bytesize

    total = 0
    for name, value in item.attrs.items():
        kind = value.type
        if kind == "S":
            total += len(name.encode()) + len(value.value.encode())
        elif kind == "N":
            total += len(name.encode()) + len(str(value.value))
        else:
            total += bytesize(name) + value.size()
    return total


def _before_run(comparison: str | None, values: list[Any], forward: bool) -> Any:
    """Whether a sort key comes before every match, in the order of the query."""
    op = (comparison or "").upper()
    if forward:
        if op in ("GT", ">"):
            return lambda k: k <= values[0]
        if op in ("GE", ">=", "EQ", "=", "BETWEEN", "BEGINS_WITH"):
            return lambda k: k < values[0]
        return lambda k: False
    if op in ("LT", "<"):
        return lambda k: k >= values[0]
    if op in ("LE", "<=", "EQ", "="):
        return lambda k: k > values[0]
    if op == "BETWEEN":
        return lambda k: k > values[1]
    if op == "BEGINS_WITH":
        return lambda k: k > values[0] and not k.startswith(values[0])
    return lambda k: False


def _first_false(keyed: list[tuple[Any, Any]], predicate: Any) -> int:
    """The index of the first pair whose key fails ``predicate``, which holds for a leading run of them."""
    lo, hi = 0, len(keyed)
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(keyed[mid][0]):
            lo = mid + 1
        else:
            hi = mid
    return lo
