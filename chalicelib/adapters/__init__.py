"""Adapters: the only code that talks to AWS. One module per service, each taking its boto3 client."""
