"""An example shop that uses shop_recs only through its documented settings.

The shop's own Celery app is created here, as Django's Celery guide does it; shop_recs' tasks
are found by ``autodiscover_tasks()`` because ``shop_recs.workers`` is an installed app.
"""

from storefront.celery import app as celery_app

__all__ = ["celery_app"]
