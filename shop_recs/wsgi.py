"""WSGI entry point (gunicorn shop_recs.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_recs.settings")

application = get_wsgi_application()
