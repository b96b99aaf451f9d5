"""SQS adapter: send message bodies in batches that respect SQS's entry and size limits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..domain.errors import QueueRejected, TransientError

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = 256 * 1024
MAX_ATTEMPTS = 6
MAX_CONCURRENT_BATCHES = 8


class NamedQueue:
    """A queue known by name; its URL is looked up once, on first use."""

    def __init__(self, client: Any, queue_name: str) -> None:
        self._client = client
        self._queue_name = queue_name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._client.get_queue_url(QueueName=self._queue_name)["QueueUrl"]
        return self._url


class SqsTickQueue(NamedQueue):

    def send(self, bodies: Sequence[str]) -> int:
        """Send every body; returns the number of SendMessageBatch requests made. Several batches (a large
        request's ticks) are sent concurrently: each is a round trip, and the client waits for all of them.
        Any failure is raised once every batch has been tried."""
        batches: list[list[str]] = []
        batch: list[str] = []
        size = 0
        for body in bodies:
            length = len(body.encode())
            if length > MAX_MESSAGE_BYTES:  # refused by SQS (or, in an emulator, accepted and then a surprise)
                raise QueueRejected(f"a message of {length} bytes is over the SQS limit of {MAX_MESSAGE_BYTES}")
            if batch and (len(batch) == MAX_BATCH_ENTRIES or size + length > MAX_BATCH_BYTES):
                batches.append(batch)
                batch, size = [], 0
            batch.append(body)
            size += length
        if batch:
            batches.append(batch)
        if len(batches) == 1:
            self._send_batch(batches[0])
        elif batches:
            self.url  # noqa: B018  # looked up (and the client built) once, before the threads share it
            with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_BATCHES, len(batches))) as pool:
                for future in [pool.submit(self._send_batch, b) for b in batches]:
                    future.result()
        return len(batches)

    def _send_batch(self, bodies: list[str]) -> None:
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
        for attempt in range(MAX_ATTEMPTS):
            response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed = {f["Id"] for f in response.get("Failed", [])}
            if not failed:
                return
            sender_faults = [f for f in response["Failed"] if f.get("SenderFault")]
            if sender_faults:
                raise QueueRejected(f"SQS rejected a message: {sender_faults[0].get('Message')}")
            entries = [e for e in entries if e["Id"] in failed]
            time.sleep(0.05 * 2**attempt)
        raise TransientError(f"SQS did not accept {len(entries)} message(s)")
