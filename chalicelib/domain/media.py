"""The media types the pipeline reads, by the format each names: for request bodies, and for files whose name
says nothing. A module of its own, so that declaring the API's routes needs nothing of the parsers."""

MEDIA_TYPES = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "text/csv": "csv",
}
