"""Insight: RFM, lifecycle stages, relationship layers and health metrics, read-only over the store.

Every analysis is one portable Ibis expression (see ``docs/adr/0009-analytics-layer.md``): the same
code runs on the embedded SQLite store, on PostgreSQL and on DuckDB, and on a distributed engine
that Ibis reaches. Pure rules (periods, scoring, classes, stages, layers) live in ``periods`` and
``rules``; ``source`` binds the store's tables; ``rfm``, ``lifecycle`` and ``layers`` build the
expressions and assemble their results. ``nightly`` runs every analysis, rule tag and segment in
one pass over a sharing source, with the brand's thresholds from ``config``.
"""
