"""shop_recs: a multi-modal, content-based and hybrid recommender plugin for Django shops.

Apps to install: ``shop_recs.catalog``, ``shop_recs.api`` and ``shop_recs.workers``; the pure
core is ``shop_recs.recsys`` (no Django). The standalone service's wiring (settings, urls,
Celery app, WSGI/ASGI) lives here too: ``DJANGO_SETTINGS_MODULE=shop_recs.settings``.

Nothing is imported here, so that a shop's own project imports only what it installs: the
standalone service's Celery app is loaded by ``SHOP_RECS["CELERY_APP"]`` (see the workers app).
"""
