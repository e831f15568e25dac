"""feqa ingest."""
