"""With no AWS to reach (no credentials, no endpoint), the API answers 503 saying so, never a bare 500; under
`chalice local` with no emulator configured, it says what to run."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from chalicelib.entrypoints import api
from chalicelib.settings import Settings


@pytest.mark.parametrize("exc", [NoCredentialsError(),
                                 EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")])
@pytest.mark.parametrize("local", [True, False])
def test_no_aws_to_reach_is_a_503_that_says_why(monkeypatch: pytest.MonkeyPatch, exc: Exception, local: bool) -> None:
    monkeypatch.setattr(api, "get_settings", lambda: Settings(chalice_local_without_endpoint=local))
    status, body = api.http_error(exc)
    assert status == 503 and body["error"] == "AwsUnreachable"
    assert str(exc) in body["message"]
    assert ("make emulator" in body["message"]) is local


def test_only_the_chalice_cli_without_an_endpoint_is_told_about_the_emulator() -> None:
    assert Settings.from_env({"AWS_CHALICE_CLI_MODE": "true"}).chalice_local_without_endpoint
    assert not Settings.from_env({"AWS_CHALICE_CLI_MODE": "true",
                                  "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}).chalice_local_without_endpoint
    assert not Settings.from_env({}).chalice_local_without_endpoint  # in Lambda


def test_under_chalice_local_without_an_endpoint_a_500_says_what_to_run_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "get_settings", lambda: Settings(chalice_local_without_endpoint=True))
    status, body = api.http_error(RuntimeError("ResourceNotFoundException: no such table"))
    assert status == 500 and "make emulator" in body["message"]
    monkeypatch.setattr(api, "get_settings", lambda: Settings(chalice_local_without_endpoint=False))
    assert "make emulator" not in api.http_error(RuntimeError("x"))[1]["message"]
