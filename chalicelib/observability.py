"""Structured JSON logs and CloudWatch embedded-format metrics (Powertools for AWS Lambda).

One logger for every function; metrics are printed as EMF with the invocation's logs, so they cost
no API call. No tick payloads at INFO.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="market-data")
metrics = Metrics(namespace="MarketData", service="market-data")


def count(name: str, value: float) -> None:
    """Add to a count metric of the current invocation (flushed by the entry point)."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush() -> None:
    if metrics.metric_set:
        metrics.flush_metrics()
