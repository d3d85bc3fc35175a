"""The catalog: the Django app (label ``shop_recs_catalog``) that owns the models and migrations.

Here: models, signals (what changed, sent after commit), validation (external ids, JSON,
images), services (all writes, one module per entity), selectors (plain reads), the bundle
importer, item filters, image URLs, and pgvector storage plumbing (``vectors``).

May import: ``shop_recs.conf``, ``shop_recs.recsys``. Nothing above it: other layers learn of
changes from :mod:`shop_recs.catalog.signals`.
"""
