"""Workers: background work and operations (Django app ``shop_recs_workers``).

Here: Celery tasks (thin: take ids, call one service, retry), the receivers that turn catalog
signals into tasks, the work of admin jobs (``jobs``), queue inspection (``queues``) and the
``recs_*`` management commands (each a thin shell over the package that owns the work).

May import: ``storefront``, ``ranking``, ``search``, ``encoding``, ``catalog``, ``conf``,
``recsys``. Only this layer knows Celery.
"""
