"""One structured JSON logger for every function (Powertools for AWS Lambda). No tick payloads at INFO."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="market-data")
