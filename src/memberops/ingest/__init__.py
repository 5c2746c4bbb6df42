"""Ingestion: orders, refunds and events from the API and from files, through one path."""
