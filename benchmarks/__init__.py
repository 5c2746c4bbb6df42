"""Benchmarks of memberops, run with ``uv run python -m benchmarks.run``; figures go to docs/benchmarks.md.

Every figure is a ratio measured side by side in one run (our pipeline against the plainest way
of doing the same work on the same machine), because absolute times on shared machines drift.
"""
