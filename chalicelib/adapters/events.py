"""EventBridge adapter: publish the pipeline's custom events."""

from __future__ import annotations

import json
from typing import Any

from ..domain.errors import TransientError


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str, source: str) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        response = self._client.put_events(Entries=[{
            "Source": self._source, "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":")), "EventBusName": self._bus,
        }])
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise TransientError(f"EventBridge refused the event: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}")
