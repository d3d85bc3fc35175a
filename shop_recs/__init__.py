"""shop_recs: a multi-modal, content-based and hybrid recommender plugin for Django shops.

Apps to install: ``shop_recs.catalog``, ``shop_recs.api``, ``shop_recs.workers``,
``shop_recs.storefront`` and ``shop_recs.dashboard``. One package per concern, layered (each
imports only the ones below it; ``pyproject.toml`` holds the import contracts)::

    api, dashboard          REST endpoints; the admin pages
    workers                 Celery tasks, management commands, queue inspection
    storefront              the shop's products mirrored in, tracking, widgets, template tags
    ranking                 training, activation, recommendations, similar items, rules
    search                  k-NN queries in pgvector, query-text encoding
    encoding                the encode pipeline, images by URL (SSRF-safe)
    catalog                 models, migrations, services (writes), selectors (reads)
    recsys                  the pure core: encoders, models, evaluation (no Django)

``shop_recs.conf`` (the settings object) sits beside the layers. The standalone service's
wiring (settings, urls, Celery app, WSGI/ASGI) lives here too:
``DJANGO_SETTINGS_MODULE=shop_recs.settings``.

Nothing is imported here, so that a shop's own project imports only what it installs: the
standalone service's Celery app is loaded by ``SHOP_RECS["CELERY_APP"]`` (see the workers app).
"""
