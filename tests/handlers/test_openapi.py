"""The OpenAPI document: valid OpenAPI 3.1 (openapi-spec-validator), one path per route of the app, the file
`make openapi` writes up to date, and the real answers of every route valid against the schemas it publishes."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from openapi_spec_validator import validate
from referencing import Registry, Resource

from chalicelib.openapi import document
from tests.moto_stack import ROOT, deliver_events, run_processor


def get(stack: dict[str, Any], path: str) -> tuple[int, Any]:
    response = stack["client"].http.get(path)
    return response.status_code, json.loads(response.body)


def check(doc: dict[str, Any], answer: Any, schema: dict[str, Any]) -> None:
    registry: Registry = Registry().with_resource("urn:api", Resource.from_contents(
        {**doc, "$schema": "https://json-schema.org/draft/2020-12/schema"}))
    resolved = json.loads(json.dumps(schema).replace('"#/components', '"urn:api#/components'))
    jsonschema.Draft202012Validator(resolved, registry=registry).validate(answer)


def response_schema(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"][
        "schema"]
    return schema


def test_the_document_is_valid_openapi_and_describes_every_route(stack: dict[str, Any]) -> None:
    status, doc = get(stack, "/openapi.json")
    assert status == 200
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    routes = {path: {m.lower() for m in methods} for path, methods in stack["app"].app.routes.items()}
    assert {path: set(ops) for path, ops in doc["paths"].items()} == routes


def test_the_written_document_is_the_served_one() -> None:
    written = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert written == document(), "docs/openapi.json is out of date: run make openapi"


def test_real_answers_match_the_published_schemas(stack: dict[str, Any]) -> None:
    _, doc = get(stack, "/openapi.json")
    client = stack["client"]
    body = json.dumps([{"symbol": "OAS", "price": "10.5", "volume": 2, "timestamp": "2024-07-01T10:00:00Z",
                        "venue": "X"},
                       {"symbol": "OAS", "price": 11, "volume": "1.25", "timestamp": "2024-07-01T10:00:30Z"}])
    accepted = client.http.post("/ingest", headers={"Content-Type": "application/json"}, body=body.encode())
    assert accepted.status_code == 202
    check(doc, json.loads(accepted.body), response_schema(doc, "/ingest", "post", 202))
    run_processor(stack)
    deliver_events(stack)
    ingestion_id = json.loads(accepted.body)["ingestion_id"]
    for path, template, method, code in [
        ("/bars?symbol=OAS", "/bars", "get", 200),
        ("/bars?symbols=OAS,NONE&interval=30m", "/bars", "get", 200),
        ("/bars?symbol=OAS&interval=1d&tz=Asia/Kolkata&sort=desc", "/bars", "get", 200),
        ("/bars?symbol=OAS&interval=nope", "/bars", "get", 400),
        (f"/ingestions/{ingestion_id}", "/ingestions/{ingestion_id}", "get", 200),
        ("/ingestions/api-nope", "/ingestions/{ingestion_id}", "get", 404),
        ("/ingestions?source=api", "/ingestions", "get", 200),
        ("/symbols", "/symbols", "get", 200),
    ]:
        status, answer = get(stack, path)
        assert status == code, (path, answer)
        check(doc, answer, response_schema(doc, template, method, code))
    rejected = client.http.post("/ingest", headers={"Content-Type": "application/json"},
                                body=b'[{"symbol": "OAS", "price": -1, "volume": 1}]')
    assert rejected.status_code == 400
    check(doc, json.loads(rejected.body), response_schema(doc, "/ingest", "post", 400))
