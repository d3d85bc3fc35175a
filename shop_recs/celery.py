"""The project's Celery app. Configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_recs.settings")

app = Celery("shop_recs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["shop_recs.workers"])
