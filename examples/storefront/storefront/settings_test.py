"""Test settings of the example storefront: a throwaway embedded PostgreSQL per test session."""

import os
import tempfile

if not os.environ.get("DATABASE_URL"):
    os.environ["STOREFRONT_DATA_DIR"] = tempfile.mkdtemp(prefix="storefront_test_")
    os.environ["STOREFRONT_EMBEDDED_CLEANUP"] = "delete"
os.environ.pop("CELERY_BROKER_URL", None)

from storefront.settings import *  # noqa: F403
from storefront.settings import SHOP_RECS

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SHOP_RECS = {**SHOP_RECS, "THROTTLE_RATES": {"anon": None, "user": None}, "RULES_CACHE_SECONDS": 0}
