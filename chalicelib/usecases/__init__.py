"""The use cases, one module each: ingest a request body, ingest an S3 object, process a batch of queued
chunks, aggregate dirty windows, answer queries, and the operator's commands. Each class takes exactly the
ports it uses; chalicelib/bootstrap.py wires them."""
