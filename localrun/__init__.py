"""Run the whole pipeline on one machine: a moto server as the AWS emulator, `chalice local` for the
REST API, and a driver that delivers the events AWS would (S3 -> ingestion, SQS -> processor,
EventBridge and the schedule -> aggregator) to the same Chalice handlers. Development only."""
