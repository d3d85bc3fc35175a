"""The shop_recs Django project: settings, urls, the Celery app, WSGI/ASGI. Wiring only."""

from shop_recs.celery import app as celery_app

__all__ = ["celery_app"]
