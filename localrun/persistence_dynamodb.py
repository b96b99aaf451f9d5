"""DynamoDB in the emulator's snapshot: a base of whole tables, then a journal of the items that changed.

Pickling moto's items is slow (about 5 s per 100,000, during which every request waits), so a save writes only
what changed since the last one: every write operation of the backend (PutItem, UpdateItem, DeleteItem, and
through them BatchWriteItem and TransactWriteItems) notes the key it touched, and a save appends each noted
key's item as it is now, or its deletion, to the journal. The base is written again (compacted) when tables
are created or deleted, when an operation the tracker cannot follow ran (PartiQL), and when the journal has
grown past the base.

On disk, a base is ``{"backend": <the backend pickled without its items>, "items": {table: [item JSON]}}`` and
the journal a sequence of length-prefixed pickled frames, ``[(table, key JSON, item JSON or None)]``. The
manifest says how many journal bytes are whole; bytes past them (a crash during an append) are ignored.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import struct
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

_FRAME = struct.Struct(">Q")
_TRACKED = ("put_item", "update_item", "delete_item")
# Operations after which the tracker cannot say which items changed: the next save writes a new base.
_UNTRACKED = ("create_table", "delete_table", "update_table", "execute_statement", "execute_transaction",
              "batch_execute_statement", "restore_table_from_backup", "restore_table_to_point_in_time",
              "import_table", "tag_resource", "untag_resource", "update_time_to_live", "update_continuous_backups",
              "create_backup", "delete_backup")
COMPACT_MIN_BYTES = 16 * 1024 * 1024


class ChangeTracker:
    """The keys that DynamoDB write operations touched since the last save, by table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.changed: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.whole = True  # no base written yet

    def note(self, table: str, key: dict[str, Any]) -> None:
        marker = repr(sorted((name, repr(value)) for name, value in key.items()))
        with self._lock:
            self.changed[table][marker] = key

    def note_whole(self) -> None:
        with self._lock:
            self.whole = True

    def take(self) -> tuple[bool, dict[str, dict[str, dict[str, Any]]]]:
        with self._lock:
            whole, changed = self.whole, self.changed
            self.whole, self.changed = False, defaultdict(dict)
        return whole, changed


TRACKER = ChangeTracker()


def _key_of(backend: Any, table_name: str, item_attrs: dict[str, Any]) -> dict[str, Any]:
    table = backend.get_table(table_name)
    key = {table.hash_key_attr: item_attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = item_attrs[table.range_key_attr]
    return key


def install(tracker: ChangeTracker = TRACKER) -> None:
    """Make every DynamoDB backend of this process note what it writes (idempotent)."""
    for name in _TRACKED:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "tracked", False):
            continue

        def tracked(self: Any, table_name: str, key_or_item: dict[str, Any], *args: Any,
                    _method: Callable[..., Any] = method, _name: str = name, **kwargs: Any) -> Any:
            try:
                return _method(self, table_name, key_or_item, *args, **kwargs)
            finally:
                try:
                    key = _key_of(self, table_name, key_or_item) if _name == "put_item" else key_or_item
                    tracker.note(table_name, key)
                except Exception:  # the operation's own error (no such table, no key) is what counts
                    tracker.note_whole()

        tracked.tracked = True  # type: ignore[attr-defined]
        functools.update_wrapper(tracked, method)
        setattr(DynamoDBBackend, name, tracked)
    for name in _UNTRACKED:
        method = getattr(DynamoDBBackend, name, None)
        if method is None or getattr(method, "tracked", False):
            continue

        def whole(self: Any, *args: Any, _method: Callable[..., Any] = method, **kwargs: Any) -> Any:
            try:
                return _method(self, *args, **kwargs)
            finally:
                tracker.note_whole()

        whole.tracked = True  # type: ignore[attr-defined]
        functools.update_wrapper(whole, method)
        setattr(DynamoDBBackend, name, whole)


# ---------------------------------------------------------------------------------------------- capture
def capture_base(backend: Any, pickle_backend: Callable[[Any], bytes]) -> tuple[bytes, int]:
    """The whole backend: tables pickled without their items, items as plain JSON (fast to pickle)."""
    items: dict[str, list[dict[str, Any]]] = {}
    detached: dict[str, Any] = {}
    for name, table in backend.tables.items():
        items[name] = [item.to_json()["Attributes"] for item in table.all_items()]
        detached[name] = table.items
        table.items = defaultdict(dict)
    try:
        meta = pickle_backend(backend)
    finally:
        for name, table in backend.tables.items():
            table.items = detached[name]
    count = sum(len(rows) for rows in items.values())
    return pickle.dumps({"backend": meta, "items": items}, protocol=pickle.HIGHEST_PROTOCOL), count


def capture_changes(backend: Any, changed: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, Any, Any]]:
    """Each changed key's item as it is now (None: deleted)."""
    out: list[tuple[str, Any, Any]] = []
    for table_name, keys in changed.items():
        if table_name not in backend.tables:
            continue
        for key in keys.values():
            item = backend.get_item(table_name, key)
            out.append((table_name, key, item.to_json()["Attributes"] if item is not None else None))
    return out


def frame(changes: list[tuple[str, Any, Any]]) -> bytes:
    data = pickle.dumps(changes, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(data)) + data


def append(path: Path, data: bytes, whole_bytes: int) -> int:
    """Append a frame after the journal's whole bytes (cutting any torn tail); returns the new whole size."""
    with open(path, "r+b" if path.exists() else "wb") as out:
        out.truncate(whole_bytes)
        out.seek(whole_bytes)
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return whole_bytes + len(data)


# ---------------------------------------------------------------------------------------------- restore
def restore(base: bytes, journal: Path | None, journal_bytes: int,
            unpickle_backend: Callable[[io.BytesIO], Any]) -> tuple[Any, int]:
    """The backend of a base and its journal; returns it and its number of items."""
    doc = pickle.loads(base)
    backend = unpickle_backend(io.BytesIO(doc["backend"]))
    for name, rows in doc["items"].items():
        table = backend.tables[name]
        for attrs in rows:
            _put(table, attrs)
    if journal is not None and journal.exists():
        for changes in _frames(journal, journal_bytes):
            for table_name, key, attrs in changes:
                table = backend.tables.get(table_name)
                if table is None:
                    continue
                if attrs is not None:
                    _put(table, attrs)
                elif backend.get_item(table_name, key) is not None:
                    backend.delete_item(table_name, key)
    count = sum(sum(1 for _ in table.all_items()) for table in backend.tables.values())
    return backend, count


def _put(table: Any, attrs: dict[str, Any]) -> None:
    """Put back an item that the table held: what Table.put_item stores, without its checks (these items
    passed them when they were written), several times faster."""
    hash_value = DynamoType(attrs[table.hash_key_attr])
    range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr is not None else None
    item: Any = Item.__new__(Item)
    item.hash_key, item.range_key = hash_value, range_value
    item.attrs = LimitedSizeDict()
    # Item's own constructor sets attribute by attribute, and each set sizes the whole item again.
    dict.update(item.attrs, {name: DynamoType(value) for name, value in attrs.items()})
    if range_value is not None:
        table.items[hash_value][range_value] = item
    else:
        table.items[hash_value] = item


def _frames(path: Path, whole_bytes: int) -> Iterator[list[tuple[str, Any, Any]]]:
    with open(path, "rb") as journal:
        position = 0
        while position + _FRAME.size <= whole_bytes:
            (size,) = _FRAME.unpack(journal.read(_FRAME.size))
            if position + _FRAME.size + size > whole_bytes:
                return
            yield pickle.loads(journal.read(size))
            position += _FRAME.size + size
