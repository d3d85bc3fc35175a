"""Test settings: the real stack on a throwaway embedded PostgreSQL (unless DATABASE_URL is set).

Celery runs in-process (eager) here; tests that need a real worker start one against Redis.
"""

import os
import tempfile

if not os.environ.get("DATABASE_URL"):
    # A fresh data dir per test session; the server is stopped and deleted at exit.
    os.environ["SHOP_RECS_DATA_DIR"] = tempfile.mkdtemp(prefix="shop_recs_test_")
    os.environ["SHOP_RECS_EMBEDDED_CLEANUP"] = "delete"
os.environ.pop("CELERY_BROKER_URL", None)

from shop_recs.settings import *  # noqa: F403
from shop_recs.settings import DATA_DIR

MEDIA_ROOT = DATA_DIR / "media"
STATIC_ROOT = DATA_DIR / "static"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
# Merchandising rules are read on every request: a per-process cache would outlive the rules
# that a test's rolled-back transaction removed (tests of the cache itself set it).
SHOP_RECS = {
    "CELERY_APP": "shop_recs.celery.app",
    "THROTTLE_RATES": {"anon": None, "user": None},
    "RULES_CACHE_SECONDS": 0,
    # experiments likewise; their logs are flushed by the tests themselves (no thread)
    "EXPERIMENTS_CACHE_SECONDS": 0,
    "EXPERIMENT_FLUSH_SECONDS": 0,
    # product changes mirrored right after each commit, so a test sees them at once (the
    # multi-table shop tests run the default queue: tests/test_source_tables.py)
    "MIRROR_DELAY_SECONDS": 0,
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# shop product models: a one-table shop (test_source) and a multi-table one (test_source_tables)
INSTALLED_APPS = [*INSTALLED_APPS, "tests.shopapp", "tests.tableshop"]  # noqa: F405
