"""The table's schema as the store uses it: its keys and its time-to-live attribute (infra/definitions.py
creates the table from these, in the cloud template and in the local emulator)."""

import zlib

KEY_SCHEMA = (("pk", "HASH"), ("sk", "RANGE"))
TTL_ATTRIBUTE = "ttl"  # Idempotency-Key records expire

# Dirty-window marks and the symbol list are spread over this many partition keys (D#00.., S#00..), chosen by
# a hash of the symbol, so their writes spread with the symbols instead of all landing on one partition.
SHARDS = 32


def shard_of(symbol: str) -> str:
    """The shard suffix of a symbol's marks and symbol-list entry: two digits, stable across processes."""
    return f"{zlib.crc32(symbol.encode()) % SHARDS:02d}"


def all_shards() -> list[str]:
    return [f"{n:02d}" for n in range(SHARDS)]
