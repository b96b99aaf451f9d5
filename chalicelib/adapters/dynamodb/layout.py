"""The table's schema as the store uses it: its keys and its time-to-live attribute (infra/definitions.py
creates the table from these, in the cloud template and in the local emulator)."""

KEY_SCHEMA = (("pk", "HASH"), ("sk", "RANGE"))
TTL_ATTRIBUTE = "ttl"  # Idempotency-Key records expire
