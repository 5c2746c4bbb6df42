"""The ``memberops`` command line: assembly only, every rule lives in the services."""
