"""A queued chunk's ticks: decoded from the message (a request's), or read from S3 and parsed (a file's)."""

from __future__ import annotations

from ..domain.chunking import gunzip
from ..domain.columns import ColumnMap
from ..domain.csv_rows import parse_csv_lines
from ..domain.formats import (
    ParseContext,
    ParseResult,
    is_one_json_document,
    parse_json_document,
    parse_ndjson_lines,
    text_lines,
)
from ..domain.options import ReadOptions
from ..domain.ticks import Tick, TickColumns
from ..ports import ObjectStore
from ..schemas import (
    ColumnsMessage,
    ObjectMessage,
    QueueMessage,
    RangeMessage,
    TicksMessage,
    decode_columns,
    decode_ticks,
)
from ..settings import Settings


class ChunkReader:
    def __init__(self, objects: ObjectStore, settings: Settings) -> None:
        self._objects = objects
        self._settings = settings

    def __call__(self, message: QueueMessage) -> tuple[list[Tick] | TickColumns, ParseResult]:
        """The chunk's valid ticks, and its parse result (rejects located by file line or record)."""
        if isinstance(message, ColumnsMessage):
            return decode_columns(message), ParseResult()
        if isinstance(message, TicksMessage):
            return decode_ticks(message), ParseResult()
        settings = self._settings
        ctx = ParseContext(received_ns=message.received_ns, default_symbol=message.default_symbol,
                           max_errors=settings.max_errors, max_line_chars=settings.max_line_bytes,
                           fast=settings.fast_path,
                           options=ReadOptions.from_dict(message.options, message.default_symbol))
        if isinstance(message, ObjectMessage):
            raw = self._objects.read_all(message.bucket, message.key, message.version_id)
            if message.gzip:
                raw = b"".join(gunzip([raw], settings.json_object_max_bytes))
            text = raw.decode("utf-8", "replace")
            if text.lstrip("\ufeff \r\n\t").startswith("{") and not is_one_json_document(text):
                parsed = parse_ndjson_lines(text_lines(text), 1, ctx)  # objects one per line, named .json
            else:
                parsed = parse_json_document(text, ctx)
            return parsed.columns(), parsed
        if isinstance(message, RangeMessage):
            data = self._objects.read_range(message.bucket, message.key, message.version_id, message.start,
                                            message.end)
            text = data.decode("utf-8", "replace")
        else:
            text = message.text
        lines = text_lines(text)
        if message.format == "csv":
            parsed = parse_csv_lines(lines, message.first_line, ColumnMap.from_dict(message.header or {}), ctx)
        else:
            parsed = parse_ndjson_lines(lines, message.first_line, ctx)
        return parsed.columns(), parsed
