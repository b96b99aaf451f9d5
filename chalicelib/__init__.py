"""Domain logic, adapters and wiring of the market-data pipeline (everything app.py calls)."""
