"""The plugin's settings object, read from ``settings.SHOP_RECS`` with defaults.

Follows DRF's ``api_settings``: attribute access, cached, reloaded on ``setting_changed`` so
``override_settings(SHOP_RECS=...)`` works in tests. Swappable parts named by dotted path
(:data:`IMPORT_STRINGS`) are imported on access; settings that take a callable also accept
``"callable:dotted.path"`` (:data:`CALLABLE_STRINGS`, :func:`import_callable`).

This module sits beside the layers (every package may import it) and imports only Django and
``recsys``.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from shop_recs.recsys.base import EVENT_WEIGHTS

CALLABLE_PREFIX = "callable:"

DEFAULTS: dict[str, Any] = {
    # Reads (item lists, recommendations) are public by default: widgets call them from the
    # browser. Set True to require a token for every request.
    "READ_REQUIRES_AUTH": False,
    # DRF throttle rates ("N/second|minute|hour|day"); None disables that throttle.
    "THROTTLE_RATES": {"anon": "600/minute", "user": "20000/minute"},
    # The Django cache (an alias of CACHES) holding throttle counts, shared by every web
    # process (Redis); None: the plugin's own database cache (table shop_recs_cache).
    "THROTTLE_CACHE": None,
    # Addresses or networks of reverse proxies whose X-Forwarded-For names the client (read
    # from the right); empty: the socket peer is the client and the header is ignored.
    "TRUSTED_PROXIES": [],
    "PAGE_SIZE": 50,
    "MAX_PAGE_SIZE": 500,
    "EVENTS_MAX_BATCH": 1000,
    # Unknown customers in events are reported per event unless this is True.
    "EVENTS_CREATE_UNKNOWN_CUSTOMERS": False,
    # Events may be at most this far in the future (clock skew of the sending system).
    "EVENTS_MAX_FUTURE_SECONDS": 24 * 3600,
    # Training weight of each kind of event (recsys.base.EVENT_WEIGHTS is the one default, so
    # the app, the evaluation and the benchmarks train alike).
    "EVENT_WEIGHTS": dict(EVENT_WEIGHTS),
    "MAX_JSON_BODY_BYTES": 5 * 1024 * 1024,
    "MAX_REQUEST_BYTES": 25 * 1024 * 1024,
    "MAX_JSON_FIELD_BYTES": 64 * 1024,
    "MAX_IMAGE_BYTES": 20 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 40_000_000,
    "IMAGE_FORMATS": ["JPEG", "PNG", "WEBP", "GIF"],
    # Images one item may hold (uploads and URLs; every one is decoded and encoded).
    "MAX_IMAGES_PER_ITEM": 10,
    "IMAGE_URL_SCHEMES": ["http", "https"],
    # Encoders (dotted paths + keyword options). IMAGE_ENCODER None disables images; "joint"
    # reuses a text encoder that reads images too (a CLIP model: one space for both).
    "TEXT_ENCODER": "shop_recs.recsys.encoders.SentenceTransformerEncoder",
    "TEXT_ENCODER_OPTIONS": {},
    "IMAGE_ENCODER": "shop_recs.recsys.encoders.EfficientNetLite0Encoder",
    "IMAGE_ENCODER_OPTIONS": {},
    # Attributes that go into the item text (None: every scalar attribute).
    "TEXT_ATTRIBUTE_KEYS": None,
    # Share of the text space in the fused content space (the rest is the image space).
    "CONTENT_TEXT_WEIGHT": 0.5,
    "ENCODE_BATCH_SIZE": 32,
    # Encoding at least this many items (and half the catalogue) at once builds the HNSW
    # indexes after the load instead of row by row; 0 switches that off.
    "ENCODE_BULK_MIN": 500,
    # Image download by URL (workers): timeout in seconds; networks exempt from the
    # public-address rule (e.g. an internal CDN: ["10.1.2.0/24"]).
    "IMAGE_FETCH_TIMEOUT": 10.0,
    "IMAGE_FETCH_ALLOW_NETWORKS": [],
    "SIMILAR_MAX_K": 100,
    # Filtered similarity: candidate sets up to this size are ranked exactly (no index).
    "EXACT_SCAN_MAX": 5000,
    # hnsw.ef_search of every database connection (pgvector's default is 40): the size of the
    # candidate list an HNSW scan keeps; higher = better recall, slower queries.
    "HNSW_EF_SEARCH": 100,
    # --- the recommender model -------------------------------------------------------------
    # Dotted path of the model class (a recsys.base.VectorRecommender: the serving interface
    # the app calls) and its parameter overrides (see recsys.hybrid.HybridConfig).
    "MODEL_CLASS": "shop_recs.recsys.hybrid.HybridRecommender",
    "MODEL_PARAMS": {},
    # Where model artefacts are written (None: <DATA_DIR or BASE_DIR/.data>/models).
    "MODEL_DIR": None,
    # Share of the positives held out to evaluate each trained model.
    "TRAIN_EVAL_FRACTION": 0.1,
    "TRAIN_SEED": 0,
    # Train again on every positive after the evaluation run (the stored model then saw all
    # data; its metrics are those of the evaluation run).
    "TRAIN_REFIT_ALL": True,
    # Model selection per shop: recs_train (and the training task) carves a validation split
    # from the shop's own events and searches model families (the two-tower hybrid, EASE with
    # content, a blend) and their hyperparameters, then stores the winner refitted on every
    # event. False: MODEL_CLASS with MODEL_PARAMS, evaluated on a held-out slice, as before.
    "MODEL_SELECTION": True,
    # Wall-clock budget of one training run in seconds: with MODEL_SELECTION the search and the
    # final fit; without, the evaluation fit and the final fit (a model that supports it stops
    # at the batch that passes its share and keeps its best state). None: no limit (selection
    # then uses 180 s).
    "TRAIN_BUDGET_SECONDS": 180,
    # The model families selection may choose from (e.g. ["ease", "blend"] where torch is not
    # wanted in training); None: every family recsys.selection offers.
    "MODEL_FAMILIES": None,
    # Fewer positive events than this: training refuses with a clear message.
    "TRAIN_MIN_INTERACTIONS": 20,
    # Test users the evaluation of a training run ranks (a fixed random sample); None: all.
    "TRAIN_EVAL_USERS_MAX": 20000,
    # A new version is activated only if this metric is at least (1 - tolerance) x the active
    # version's, unless forced.
    "ACTIVATION_METRIC": "recall@10",
    "ACTIVATION_TOLERANCE": 0.02,
    # Recent events of a shopper used at request time.
    "HISTORY_LENGTH": 50,
    # Served recommendation lists are logged for the dashboard's coverage, this many per
    # database write (also written when the oldest waits 30 s); 0 switches logging off.
    "SERVED_LOG_BUFFER": 20,
    # Merchandising rules are read once per this many seconds per process (a saved rule clears
    # the saving process's copy at once); 0 reads them on every request.
    "RULES_CACHE_SECONDS": 5,
    # Dotted path of a Celery app to load when Django starts (the standalone service sets
    # "shop_recs.celery.app"); None: the shop's own Celery app, which must autodiscover the
    # tasks of INSTALLED_APPS (``app.autodiscover_tasks()``).
    "CELERY_APP": None,
    # Load the encoders in every Celery worker process when it starts (else on its first
    # encode task): True in the standalone service; off in a shop, whose workers may run other
    # work than the plugin's.
    "WORKER_WARMUP": False,
    # --- scale-out (docs/scaling.md) ----------------------------------------------------------
    # Celery queue of each kind of the plugin's work: "encode" (encode items, download images,
    # encode search queries), "train" (train a model) and "maintenance" (item statistics,
    # product mirroring and sync). None: the Celery app's default queue, so a shop's workers run
    # everything until it splits the kinds onto workers started with ``-Q``.
    "TASK_QUEUES": {"encode": None, "train": None, "maintenance": None},
    # An alias of DATABASES (a PostgreSQL read replica) that serving reads go to: similar
    # items, search, recommendations and widgets read items, vectors and models there; a
    # shopper's own events and every write stay on "default". None: everything on "default".
    # Needs "shop_recs.catalog.db.ServingReadRouter" in DATABASE_ROUTERS.
    "READ_DATABASE": None,
    # Where search query text becomes a vector: "worker" (a Celery worker on the encode queue,
    # so web processes never load torch), "local" (in the web process, loaded on the first
    # search), "auto" (worker when a broker and a result backend are configured, else local).
    "SEARCH_ENCODER": "auto",
    # Seconds a search waits for an encode worker before answering 503.
    "SEARCH_ENCODE_TIMEOUT": 5.0,
    # Encoded search queries kept per process (least recently used dropped); 0: none.
    "SEARCH_CACHE_SIZE": 1024,
    # Serving looks the active model version up at most once per this many seconds per
    # process (activation clears the activating process's copy at once); 0: every request.
    "ACTIVE_MODEL_CACHE_SECONDS": 1.0,
    # --- admin ------------------------------------------------------------------------------
    # Dotted path of the AdminSite instance the plugin's admin pages go to (a shop with its own
    # AdminSite names it, e.g. "myshop.admin.site").
    "ADMIN_SITE": "django.contrib.admin.site",
    # --- storefront tracking and widgets (shop_recs.storefront) ------------------------------
    # A product page reloaded by the same shopper within the same window of this many seconds
    # counts as one view (0: every view counts).
    "VIEW_DEDUP_SECONDS": 30,
    # Events per POST /api/v1/track/ batch (the JavaScript tracker sends one or a few).
    "TRACK_MAX_BATCH": 50,
    # Links of recommended items in widgets and the API's item cards (``url``): None = the
    # shop product's get_absolute_url() found through the item source; a URL name reversed
    # with ``external_id=``; or a callable (or "callable:dotted.path") taking the external id.
    "ITEM_URL": None,
    # The template the {% similar_items %} and {% recommended_for %} tags render by default.
    "WIDGET_TEMPLATE": "shop_recs/widgets/items.html",
    # --- the shop's own models (shop_recs.storefront.source) --------------------------------
    # Mirror the shop's product model into the plugin's items: {"MODEL": "shop.Product",
    # "FIELDS": {plugin field: dotted path | callable | "callable:dotted.path"}, "QUERYSET":
    # None or the dotted path of a callable returning the products to mirror}. None: no adapter.
    "ITEM_SOURCE": None,
    # Product changes (saves of products and of the rows their fields are read through) are
    # mirrored once none has come for this many seconds (at the latest after ten times that),
    # outside the shop's request: by a worker with a broker, else by a background thread of the
    # process. 0 mirrors right after each commit, in the saving thread (scripts, tests).
    "MIRROR_DELAY_SECONDS": 2.0,
    # External id of the Customer linked to a shop user: a format string over the user's
    # attributes ("user-{pk}", "{username}"), or a callable / "callable:dotted.path" taking
    # the user.
    "CUSTOMER_ID": "user-{pk}",
}

#: Settings whose string value is a dotted path, imported on access (as DRF's
#: ``IMPORT_STRINGS``). ``IMAGE_ENCODER = "joint"`` is a word, not a path (see
#: :data:`IMPORT_WORDS`).
IMPORT_STRINGS: frozenset[str] = frozenset(
    {"TEXT_ENCODER", "IMAGE_ENCODER", "MODEL_CLASS", "CELERY_APP", "ADMIN_SITE"}
)
#: Values of import settings that are kept as they are.
IMPORT_WORDS: frozenset[str] = frozenset({"joint"})
#: Settings that take a callable or ``"callable:dotted.path"`` beside other strings (a URL name,
#: a format string): only the prefixed form is imported.
CALLABLE_STRINGS: frozenset[str] = frozenset({"ITEM_URL", "CUSTOMER_ID"})


def import_callable(value: Any, *, setting: str = "") -> Any:
    """``"callable:dotted.path"`` -> the callable it names; anything else unchanged.

    The one parser of the prefix: ``ITEM_URL``, ``CUSTOMER_ID`` and the item source's fields
    all go through it. Raises ImportError naming the setting when the path is wrong.
    """
    if not (isinstance(value, str) and value.startswith(CALLABLE_PREFIX)):
        return value
    path = value.removeprefix(CALLABLE_PREFIX)
    try:
        func = import_string(path)
    except ImportError as exc:
        where = f" (SHOP_RECS[{setting!r}])" if setting else ""
        raise ImportError(f"Could not import {path!r}{where}: {exc}") from exc
    if not callable(func):
        raise ImportError(f"{path} is not callable")
    return func


def perform_import(value: Any, setting: str) -> Any:
    """A dotted path -> the object it names (DRF's ``perform_import``); other values as is."""
    if not isinstance(value, str) or value in IMPORT_WORDS:
        return value
    try:
        return import_string(value)
    except ImportError as exc:
        raise ImportError(f"Could not import {value!r} for SHOP_RECS[{setting!r}]: {exc}") from exc


def dotted_path(obj: Any) -> str:
    """The dotted path of a class or function (what a stored row names it by)."""
    return f"{obj.__module__}.{obj.__qualname__}"


class RecsSettings:
    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults or DEFAULTS
        self._cached: set[str] = set()

    @property
    def user_settings(self) -> dict[str, Any]:
        if not hasattr(self, "_user_settings"):
            self._user_settings = getattr(settings, "SHOP_RECS", {}) or {}
        return self._user_settings

    def raw(self, attr: str) -> Any:
        """The configured value before any import (a dotted path stays a string)."""
        if attr not in self.defaults:
            raise AttributeError(f"Invalid shop_recs setting: {attr!r}")
        value = self.user_settings.get(attr, self.defaults[attr])
        if isinstance(self.defaults[attr], dict) and isinstance(value, dict):
            value = {**self.defaults[attr], **value}
        return value

    def __getattr__(self, attr: str) -> Any:
        value = self.raw(attr)
        if attr in IMPORT_STRINGS:
            value = perform_import(value, attr)
        elif attr in CALLABLE_STRINGS:
            value = import_callable(value, setting=attr)
        self._cached.add(attr)
        setattr(self, attr, value)
        return value

    def reload(self) -> None:
        for attr in self._cached:
            delattr(self, attr)
        self._cached.clear()
        if hasattr(self, "_user_settings"):
            delattr(self, "_user_settings")


recs_settings = RecsSettings(DEFAULTS)


def check_settings_keys(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """System check: a key of ``SHOP_RECS`` that is not a setting is a typo (a misspelt
    ``READ_REQUIRES_AUTH`` would silently leave reads public); the closest valid key is named."""
    from django.core import checks

    configured = getattr(settings, "SHOP_RECS", {}) or {}
    if not isinstance(configured, dict):
        return [
            checks.Error(
                f"SHOP_RECS must be a dict, not {type(configured).__name__}.", id="shop_recs.E030"
            )
        ]
    out = []
    for key in sorted(set(configured) - set(DEFAULTS), key=str):
        close = difflib.get_close_matches(str(key), list(DEFAULTS), n=1, cutoff=0.6)
        hint = (
            f"Did you mean {close[0]!r}?"
            if close
            else "See the settings table in docs/configuration.md."
        )
        out.append(
            checks.Warning(
                f"SHOP_RECS[{key!r}] is not a shop_recs setting: it is ignored.",
                hint=hint,
                id="shop_recs.W030",
            )
        )
    return out


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "SHOP_RECS":
        recs_settings.reload()


setting_changed.connect(_reload)
