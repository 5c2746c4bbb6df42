"""The REST API (``/api/v1``): assembly only, every rule lives in the services."""
