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
from shop_recs.settings import DATA_DIR, DATABASES

# A second alias on the same test database, as a read replica would be (a TEST MIRROR: no
# database of its own). Serving reads go there only where a test sets READ_DATABASE
# (tests/test_scale_out.py); the router is installed by shop_recs.settings.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}

MEDIA_ROOT = DATA_DIR / "media"
STATIC_ROOT = DATA_DIR / "static"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
# Merchandising rules are read on every request: a per-process cache would outlive the rules
# that a test's rolled-back transaction removed (tests of the cache itself set it).
SHOP_RECS = {
    "CELERY_APP": "shop_recs.celery.app",
    "THROTTLE_RATES": {"anon": None, "user": None},
    "RULES_CACHE_SECONDS": 0,
    # product changes mirrored right after each commit, so a test sees them at once (the
    # multi-table shop tests run the default queue: tests/test_source_tables.py)
    "MIRROR_DELAY_SECONDS": 0,
    # model selection runs in every training of the suite (the default), on a small budget
    "TRAIN_BUDGET_SECONDS": 10,
    # like the rules: the active version and encoded queries would outlive a test's rollback
    "ACTIVE_MODEL_CACHE_SECONDS": 0,
    "SEARCH_CACHE_SIZE": 0,
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# shop product models: a one-table shop (test_source) and a multi-table one (test_source_tables)
INSTALLED_APPS = [*INSTALLED_APPS, "tests.shopapp", "tests.tableshop"]  # noqa: F405
