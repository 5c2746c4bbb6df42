"""Shared building blocks: settings, money, time, database session, errors, crypto."""
