"""memberops: private-domain member operations."""
