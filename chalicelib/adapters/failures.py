"""Which exceptions are the infrastructure's: worth retrying, as opposed to a bug or a bad request.

The use cases take this as a parameter (``transient``), so that they never import botocore.
"""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from ..domain.errors import TransientError

# Error codes AWS returns when a request may succeed if sent again later.
RETRYABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException", "Throttling",
    "ThrottledException", "TooManyRequestsException", "SlowDown", "RequestThrottled", "RequestTimeout",
    "RequestTimeoutException", "InternalError", "InternalServerError", "InternalFailure", "ServiceUnavailable",
    "TransactionInProgressException", "LimitExceededException", "KMSThrottlingException",
})


def is_transient(exc: BaseException) -> bool:
    """True for throttling, timeouts, connection failures and AWS's own 5xx errors."""
    # Not every BotoCoreError: a ParamValidationError is a bug, and retrying it only delays the DLQ.
    if isinstance(exc, (TransientError, BotoConnectionError, HTTPClientError, IncompleteReadError,
                        ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in RETRYABLE_CODES or int(status or 0) >= 500
    return False


def is_unreachable(exc: BaseException) -> bool:
    """True when no AWS can be reached at all: no credentials, or no endpoint answers (not a throttle)."""
    return isinstance(exc, (NoCredentialsError, PartialCredentialsError, EndpointConnectionError))
