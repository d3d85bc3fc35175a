"""Settings of the example storefront.

Everything shop_recs needs is in the block marked "shop_recs": three apps, a middleware-free
set-up, the SHOP_RECS dict naming the shop's product model, and the shared Celery settings.
"""

import os
from pathlib import Path

from shop_recs.embedded_db import embedded_database

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("STOREFRONT_DATA_DIR", BASE_DIR / ".data")).resolve()

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "storefront-example-insecure")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "shop",
    # --- shop_recs: the plugin's three apps and what its REST API needs
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "shop_recs.catalog",
    "shop_recs.api",
    "shop_recs.workers",
    "shop_recs.storefront",
    "shop_recs.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "storefront.urls"
WSGI_APPLICATION = "storefront.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL with pgvector: DATABASE_URL, else the embedded server shop_recs ships.
if os.environ.get("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
else:
    # STOREFRONT_EMBEDDED_CLEANUP=delete (the tests): stop and delete the server at exit
    cleanup = os.environ.get("STOREFRONT_EMBEDDED_CLEANUP") or None
    DATABASES = {"default": embedded_database(DATA_DIR, cleanup=cleanup)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("STOREFRONT_MEDIA_ROOT", DATA_DIR / "media"))
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# --- shop_recs
SHOP_RECS = {
    "ITEM_SOURCE": {
        "MODEL": "shop.Product",
        "FIELDS": {
            "external_id": "sku",
            "title": "name",
            "description": "description",
            "category": "category.name",
            "brand": "brand",
            "price": "price",
            "in_stock": "in_stock",
            "is_active": "is_active",
            "images": "image",
        },
    },
    "CUSTOMER_ID": "shopper-{pk}",
    "ITEM_URL": "product",  # the URL name of the product page, reversed with external_id=
}
# No REST_FRAMEWORK settings: the plugin's endpoints bring their own permissions, throttles,
# parsers and schema class, whatever a shop sets here.
# Celery: a broker when CELERY_BROKER_URL is set, else tasks run in-process (no worker needed).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_IGNORE_RESULT = True
