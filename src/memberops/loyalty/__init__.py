"""Loyalty engine: the programme document and the pure rules of growth, tiers and points."""
