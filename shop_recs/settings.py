"""Django settings for the shop_recs project, read from environment variables.

Variables (all optional):
    DJANGO_SECRET_KEY (unset: a random key kept in SHOP_RECS_DATA_DIR/secret_key),
    DJANGO_DEBUG (0/1), DJANGO_ALLOWED_HOSTS (comma separated),
    DATABASE_URL (unset: embedded PostgreSQL + pgvector under SHOP_RECS_DATA_DIR),
    SHOP_RECS_DATA_DIR (default ./.data), CELERY_BROKER_URL (unset: tasks run in-process),
    REDIS_URL (cache for throttling when set; else the database), SHOP_RECS_TRUSTED_PROXIES
    (comma-separated proxy addresses/networks), SHOP_RECS_READ_REQUIRES_AUTH (0/1),
    SHOP_RECS_TASK_QUEUES (kind=queue pairs: encode=encode,train=train,maintenance=maintenance),
    SHOP_RECS_READ_DATABASE_URL (a read replica for serving reads), CELERY_RESULT_BACKEND
    (default: the broker when it is Redis), SHOP_RECS_SEARCH_ENCODER (auto/worker/local),
    SHOP_RECS_SEARCH_ENCODE_TIMEOUT (seconds), SHOP_RECS_MODEL_PARAMS (JSON),
    SHOP_RECS_EXPERIMENT_SPOOL (a directory or a Redis URL; unset: REDIS_URL when set, else
    a directory under the data dir), SHOP_RECS_EXPERIMENT_FLUSH_SECONDS,
    SHOP_RECS_EXPERIMENTS_CACHE_SECONDS, SHOP_RECS_EXPERIMENT_ATTRIBUTION_SECONDS,
    DJANGO_LOG_LEVEL.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import dj_database_url

from shop_recs.embedded_db import embedded_database
from shop_recs.workers.routing import parse_queues, task_routes
from shop_recs.workers.schedule import beat_schedule

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DATA_DIR = Path(os.environ.get("SHOP_RECS_DATA_DIR", BASE_DIR / ".data")).resolve()

DEBUG = env_bool("DJANGO_DEBUG", False)


def installation_secret_key(data_dir: Path) -> str:
    """A random key made once per installation and kept in ``data_dir`` (readable by its owner
    only), for a demo or development install without DJANGO_SECRET_KEY: never a fixed key
    that every install would share. Deployments set DJANGO_SECRET_KEY (docker-compose.yml
    requires it)."""
    path = data_dir / "secret_key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or installation_secret_key(DATA_DIR)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "shop_recs.catalog.apps.CatalogConfig",
    "shop_recs.api.apps.ApiConfig",
    "shop_recs.workers.apps.WorkersConfig",
    "shop_recs.storefront.apps.StorefrontConfig",
    "shop_recs.dashboard.apps.DashboardConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "shop_recs.api.middleware.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop_recs.urls"
WSGI_APPLICATION = "shop_recs.wsgi.application"
ASGI_APPLICATION = "shop_recs.asgi.application"

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

if os.environ.get("DATABASE_URL"):
    # health checks: a connection that a database restart broke is replaced before its next
    # request instead of failing it
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ["DATABASE_URL"], conn_max_age=60, conn_health_checks=True
        )
    }
else:
    DATABASES = {
        "default": embedded_database(
            DATA_DIR, cleanup=os.environ.get("SHOP_RECS_EMBEDDED_CLEANUP") or None
        )
    }
# A PostgreSQL read replica (streaming replication of "default"): serving reads go there
# (shop_recs.catalog.db.ServingReadRouter; docs/scaling.md).
READ_DATABASE_URL = os.environ.get("SHOP_RECS_READ_DATABASE_URL", "")
if READ_DATABASE_URL:
    DATABASES["replica"] = dj_database_url.parse(
        READ_DATABASE_URL, conn_max_age=60, conn_health_checks=True
    )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["shop_recs.catalog.db.ServingReadRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", DATA_DIR / "static"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", DATA_DIR / "media"))
SERVE_MEDIA = env_bool("DJANGO_SERVE_MEDIA", DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Request bodies: JSON is capped by the API's parser, files by the plugin's image limits; this
# keeps Django's own form parsing bounded too.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    _redis = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    # "shop_recs" holds the API's throttle counts (SHOP_RECS["THROTTLE_CACHE"] below)
    CACHES = {"default": _redis, "shop_recs": {**_redis, "KEY_PREFIX": "shop_recs"}}
else:
    # throttle counts then live in the plugin's database cache, shared by every process
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["shop_recs.api.permissions.ReadPublicWriteAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "shop_recs.api.throttles.AnonThrottle",
        "shop_recs.api.throttles.UserThrottle",
    ],
    "DEFAULT_PARSER_CLASSES": ["shop_recs.api.parsers.LimitedJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "shop_recs.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "shop_recs API",
    "DESCRIPTION": "Catalog ingestion, events and recommendations for a Django shop.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Celery: without a broker, tasks run in-process right after the transaction commits.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("SHOP_RECS_QUEUE", "shop_recs")
# One queue per kind of work (encode, train, maintenance; unset: all on the default queue):
# docker-compose runs `worker -Q encode` and `train-worker -Q train,maintenance`.
TASK_QUEUES = parse_queues(os.environ.get("SHOP_RECS_TASK_QUEUES", ""))
CELERY_TASK_ROUTES = task_routes(TASK_QUEUES)
# Results are kept only for tasks that someone waits for (encode_query: a search's query text
# encoded by an encode worker); the broker's Redis holds them unless set.
_REDIS_SCHEMES = {"redis", "rediss", "redis+socket"}  # Celery's Redis backend reads all three
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.split("://", 1)[0] in _REDIS_SCHEMES else None
)
CELERY_RESULT_EXPIRES = 600
# Redis: a task whose worker died unacknowledged is handed out again after visibility_timeout
# (so it must exceed the longest task). JSON in SHOP_RECS_BROKER_TRANSPORT_OPTIONS overrides.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    **json.loads(os.environ.get("SHOP_RECS_BROKER_TRANSPORT_OPTIONS") or "{}"),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# The plugin's periodic jobs (shop_recs.workers.schedule; a shop adds the same to its own app):
# item statistics hourly; retraining and the product sync off unless set.
CELERY_BEAT_SCHEDULE = beat_schedule(
    stats_seconds=float(os.environ.get("SHOP_RECS_STATS_REFRESH_SECONDS", 3600)),
    retrain_seconds=float(os.environ.get("SHOP_RECS_RETRAIN_SECONDS") or 0),
    sync_seconds=float(os.environ.get("SHOP_RECS_SYNC_SECONDS") or 0),
    queues=TASK_QUEUES,
)

SHOP_RECS = {
    "CELERY_APP": "shop_recs.celery.app",
    "READ_REQUIRES_AUTH": env_bool("SHOP_RECS_READ_REQUIRES_AUTH", False),
    "ENCODE_BATCH_SIZE": int(os.environ.get("SHOP_RECS_ENCODE_BATCH_SIZE") or 32),
    # networks exempt from the image downloader's public-address rule (comma-separated CIDRs)
    "IMAGE_FETCH_ALLOW_NETWORKS": [
        n.strip()
        for n in os.environ.get("SHOP_RECS_IMAGE_FETCH_ALLOW_NETWORKS", "").split(",")
        if n.strip()
    ],
    # "N/second|minute|hour|day"; an empty value switches that throttle off (benchmarks).
    # the standalone service loads the encoders in each worker process at start (a shop's own
    # workers do not, unless it sets this)
    "WORKER_WARMUP": env_bool("SHOP_RECS_WORKER_WARMUP", True),
    # JSON overrides of the model's hyper-parameters (benchmarks: fewer epochs)
    "MODEL_PARAMS": json.loads(os.environ.get("SHOP_RECS_MODEL_PARAMS") or "{}"),
    "TASK_QUEUES": TASK_QUEUES,
    "READ_DATABASE": "replica" if READ_DATABASE_URL else None,
    "SEARCH_ENCODER": os.environ.get("SHOP_RECS_SEARCH_ENCODER") or "auto",
    "SEARCH_ENCODE_TIMEOUT": float(os.environ.get("SHOP_RECS_SEARCH_ENCODE_TIMEOUT") or 5.0),
    # trained models under the data directory, which web, worker and beat share
    "MODEL_DIR": os.environ.get("SHOP_RECS_MODEL_DIR") or str(DATA_DIR / "models"),
    "THROTTLE_RATES": {
        "anon": os.environ.get("SHOP_RECS_THROTTLE_ANON", "600/minute") or None,
        "user": os.environ.get("SHOP_RECS_THROTTLE_USER", "20000/minute") or None,
    },
    "THROTTLE_CACHE": "shop_recs" if REDIS_URL else None,
    # experiments: spooled lists and events in Redis when there is one (shared by every
    # process and server), else in a directory under the data dir (one host)
    "EXPERIMENT_SPOOL": os.environ.get("SHOP_RECS_EXPERIMENT_SPOOL") or REDIS_URL or None,
    "EXPERIMENT_FLUSH_SECONDS": float(os.environ.get("SHOP_RECS_EXPERIMENT_FLUSH_SECONDS") or 10),
    "EXPERIMENTS_CACHE_SECONDS": float(os.environ.get("SHOP_RECS_EXPERIMENTS_CACHE_SECONDS") or 5),
    "EXPERIMENT_ATTRIBUTION_SECONDS": float(
        os.environ.get("SHOP_RECS_EXPERIMENT_ATTRIBUTION_SECONDS") or 24 * 3600
    ),
    # reverse proxies in front of gunicorn whose X-Forwarded-For names the client
    "TRUSTED_PROXIES": [
        p.strip() for p in os.environ.get("SHOP_RECS_TRUSTED_PROXIES", "").split(",") if p.strip()
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
}
