"""Catalog data: items, their images, customers, interactions and per-item statistics."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import VectorField


class Item(models.Model):
    """A product as the store knows it, addressed by the store's own id."""

    external_id = models.CharField(max_length=255, unique=True)
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    category = models.CharField(max_length=200, blank=True, default="", db_index=True)
    brand = models.CharField(max_length=200, blank=True, default="", db_index=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # Set on items mirrored from the shop's product model (catalog.source): {"model":
    # "shop.Product", "images": [references as last mirrored]}; None for items from the API
    # or an import. Not part of the API's item, so a client's PUT never drops it.
    source = models.JSONField(null=True, blank=True, editable=False)
    in_stock = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    #: The fields a store writes (beside ``external_id``): the API's item, imports, the item
    #: source and the services all use this list. A change of a content field re-encodes the
    #: item; price and stock changes do not.
    CONTENT_FIELDS = ("title", "description", "category", "brand", "attributes")
    DATA_FIELDS = ("title", "description", "category", "brand", "price", "attributes",
                   "in_stock", "is_active")  # fmt: skip

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["is_active", "in_stock"], name="recs_item_active_stock")]

    def __str__(self) -> str:
        return f"{self.title} ({self.external_id})"


class ItemImage(models.Model):
    """An image of an item: an uploaded file, or a source URL that a worker fetches."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    item = models.ForeignKey(Item, related_name="images", on_delete=models.CASCADE)
    file = models.ImageField(upload_to="items/%Y/%m/", blank=True, default="")
    source_url = models.URLField(max_length=2000, blank=True, default="")
    position = models.PositiveIntegerField(default=0)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=64, blank=True, default="", db_index=True)
    content_type = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(file="") | ~Q(source_url=""), name="recs_image_file_or_url"
            )
        ]

    def __str__(self) -> str:
        return f"image {self.position} of {self.item_id}"


class ItemImageEmbedding(models.Model):
    """The image encoder's vector of one item image, kept so that adding an image encodes that
    image alone: an item's ``image`` vector is the mean of its images' normalised vectors
    (``recsys.encoders.mean_of_normalised``), recomputed from these rows.

    Reused while the image's checksum and the encoder version are those it was computed for.
    A separate table, so reading images (every item in the API) never loads vectors.
    """

    image = models.OneToOneField(
        ItemImage, primary_key=True, related_name="embedding", on_delete=models.CASCADE
    )
    dim = models.PositiveIntegerField()
    vector = VectorField()
    encoder_version = models.CharField(max_length=300)
    checksum = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"vector of image {self.image_id}"


class Customer(models.Model):
    """A shopper as the store knows it, optionally linked to a Django user."""

    external_id = models.CharField(max_length=255, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="recs_customer",
    )
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.external_id


class Event(models.TextChoices):
    VIEW = "view", "view"
    CLICK = "click", "click"
    CART = "cart", "cart"
    PURCHASE = "purchase", "purchase"
    RATING = "rating", "rating"
    LIKE = "like", "like"


class Interaction(models.Model):
    """One shopper event on one item. Anonymous sessions have a session id and no customer."""

    customer = models.ForeignKey(
        Customer, null=True, blank=True, related_name="interactions", on_delete=models.CASCADE
    )
    session_id = models.CharField(max_length=128, blank=True, default="")
    item = models.ForeignKey(Item, related_name="interactions", on_delete=models.CASCADE)
    event = models.CharField(max_length=16, choices=Event.choices)
    value = models.FloatField(default=1.0)
    occurred_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-occurred_at"], name="recs_inter_customer_time"),
            models.Index(
                fields=["session_id", "-occurred_at"],
                name="recs_inter_session_time",
                condition=~Q(session_id=""),
            ),
            models.Index(fields=["item", "-occurred_at"], name="recs_inter_item_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(customer__isnull=False) | ~Q(session_id=""),
                name="recs_inter_customer_or_session",
            )
        ]

    def __str__(self) -> str:
        who = self.customer_id or self.session_id
        return f"{who} {self.event} {self.item_id}"


class ItemStats(models.Model):
    """Event counts per item, refreshed by a background task; feeds popularity and the admin."""

    item = models.OneToOneField(
        Item, primary_key=True, related_name="stats", on_delete=models.CASCADE
    )
    views = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    carts = models.PositiveIntegerField(default=0)
    purchases = models.PositiveIntegerField(default=0)
    ratings = models.PositiveIntegerField(default=0)
    likes = models.PositiveIntegerField(default=0)
    distinct_shoppers = models.PositiveIntegerField(default=0)
    score = models.FloatField(default=0.0, db_index=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "item stats"

    def __str__(self) -> str:
        return f"stats of {self.item_id}"


class Space(models.TextChoices):
    """Embedding spaces. ``content`` fuses text and image; ``hybrid`` holds model item vectors."""

    TEXT = "text", "text"
    IMAGE = "image", "image"
    CONTENT = "content", "content"
    HYBRID = "hybrid", "hybrid"


class ItemEmbedding(models.Model):
    """One vector per item and space, with what it was computed from.

    The column has no fixed dimension so encoders can be swapped; each (space, dim) pair gets a
    partial HNSW index on ``vector::vector(dim)`` (see ``shop_recs.catalog.vectors``).
    """

    item = models.ForeignKey(Item, related_name="embeddings", on_delete=models.CASCADE)
    space = models.CharField(max_length=16, choices=Space.choices)
    dim = models.PositiveIntegerField()
    vector = VectorField()
    encoder = models.CharField(max_length=200)
    encoder_version = models.CharField(max_length=300)
    content_hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "space"], name="recs_embedding_item_space")
        ]
        indexes = [models.Index(fields=["space", "dim"], name="recs_embedding_space_dim")]

    def __str__(self) -> str:
        return f"{self.space} vector of {self.item_id}"


class ItemEncoding(models.Model):
    """Encode status of an item: what the admin and the API show, what workers pick up."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    item = models.OneToOneField(
        Item, primary_key=True, related_name="encoding", on_delete=models.CASCADE
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    requested_at = models.DateTimeField(null=True, blank=True)
    encoded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.item_id}: {self.status}"


class ModelVersion(models.Model):
    """One trained recommender: its parameters, evaluation, data counts and artefact.

    At most one version is active; its item vectors are the ``hybrid`` space in pgvector.
    """

    class Status(models.TextChoices):
        TRAINING = "training", "training"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    # dotted path of the model's class (recsys.base.VectorRecommender): what loads the artefact
    kind = models.CharField(max_length=200, default="hybrid")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING)
    is_active = models.BooleanField(default=False)
    params = models.JSONField(default=dict, blank=True)
    # held-out evaluation of this model and, for comparison, of popularity on the same split
    metrics = models.JSONField(default=dict, blank=True)
    # per epoch: loss, validation metrics, seconds (the admin charts these)
    history = models.JSONField(default=list, blank=True)
    data_counts = models.JSONField(default=dict, blank=True)
    # model selection (SHOP_RECS["MODEL_SELECTION"]): budget_seconds, seconds, chosen
    # ({"family", "params", "validation"}) and table (one row per candidate tried); empty when
    # the configured MODEL_CLASS was trained without a search
    selection = models.JSONField(default=dict, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    artefact = models.CharField(max_length=500, blank=True, default="")
    model_version = models.CharField(max_length=100, blank=True, default="")
    dim = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    note = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="recs_one_active_model"
            )
        ]

    def __str__(self) -> str:
        return f"model {self.pk} ({self.kind}, {self.status}{', active' if self.is_active else ''})"


class MerchRule(models.Model):
    """A merchandising rule applied at serve time to similar items, search and recommendations.

    ``action`` says what happens to the items the target selects: pin one item at a position,
    boost or bury by a factor, or exclude. ``context`` limits where it applies: everywhere, the
    similar list of one item, or lists in one category (a category filter, or the similar list
    of an item of that category). Rules apply between ``starts_at`` and ``ends_at`` (either may
    be empty). See ``shop_recs.ranking.merchandising``.
    """

    class Action(models.TextChoices):
        PIN = "pin", "pin item to a position"
        BOOST = "boost", "boost by a factor"
        BURY = "bury", "bury by a factor"
        EXCLUDE = "exclude", "exclude"

    class Target(models.TextChoices):
        ITEM = "item", "an item"
        BRAND = "brand", "a brand"
        CATEGORY = "category", "a category"

    class Context(models.TextChoices):
        ANYWHERE = "anywhere", "everywhere"
        ITEM = "item", "similar items of one item"
        CATEGORY = "category", "lists in one category"

    name = models.CharField(max_length=200)
    action = models.CharField(max_length=16, choices=Action.choices)
    target = models.CharField(max_length=16, choices=Target.choices, default=Target.ITEM)
    target_item = models.ForeignKey(
        Item, null=True, blank=True, related_name="+", on_delete=models.CASCADE
    )
    target_value = models.CharField(
        max_length=200, blank=True, default="", help_text="The brand or category (exact name)."
    )
    context = models.CharField(max_length=16, choices=Context.choices, default=Context.ANYWHERE)
    context_item = models.ForeignKey(
        Item, null=True, blank=True, related_name="+", on_delete=models.CASCADE
    )
    context_category = models.CharField(max_length=200, blank=True, default="")
    position = models.PositiveIntegerField(
        null=True, blank=True, help_text="Pin: 1 is the first place."
    )
    factor = models.FloatField(
        null=True, blank=True, help_text="Boost: above 1 (e.g. 1.5). Bury: below 1 (e.g. 0.5)."
    )
    priority = models.IntegerField(
        default=0, help_text="When rules conflict, the higher priority wins (then the newer)."
    )
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    is_enabled = models.BooleanField(default=True)
    note = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "-id"]
        verbose_name = "merchandising rule"

    def __str__(self) -> str:
        return self.name

    def is_live(self, now: datetime | None = None) -> bool:
        """Enabled and within its dates (``starts_at <= now < ends_at``)."""
        now = now or timezone.now()
        return (
            self.is_enabled
            and (self.starts_at is None or self.starts_at <= now)
            and (self.ends_at is None or now < self.ends_at)
        )

    def clean(self) -> None:
        """Every field that the action, target and context need, and nothing they ignore;
        errors name the field (the admin form shows them there)."""
        errors: dict[str, str] = {}
        pin = self.action == self.Action.PIN
        # target
        if pin and self.target != self.Target.ITEM:
            errors["target"] = "A pin rule pins one item: choose the target 'an item'."
        if self.target == self.Target.ITEM:
            if self.target_item_id is None:
                errors["target_item"] = "Choose the item this rule targets."
            elif pin and not Item.objects.filter(pk=self.target_item_id, is_active=True).exists():
                errors["target_item"] = "This item is not active: a pinned item must be active."
            if self.target_value:
                errors["target_value"] = "Leave this empty when the target is an item."
        elif self.target in (self.Target.BRAND, self.Target.CATEGORY):
            if not self.target_value.strip():
                errors["target_value"] = f"Enter the {self.target} (exact name) this rule targets."
            if self.target_item_id is not None:
                errors["target_item"] = f"Leave this empty when the target is a {self.target}."
        # position and factor
        if pin and (self.position is None or self.position < 1):
            errors["position"] = "A pin rule needs a position: 1 is the first place."
        elif not pin and self.position is not None:
            errors["position"] = "Only pin rules take a position: leave this empty."
        if self.action == self.Action.BOOST and (self.factor is None or not self.factor > 1):
            errors["factor"] = "A boost factor must be above 1 (e.g. 1.5); to push down, use bury."
        elif self.action == self.Action.BURY and (self.factor is None or not 0 < self.factor < 1):
            errors["factor"] = "A bury factor must be between 0 and 1 (e.g. 0.5), both excluded."
        elif self.action in (self.Action.PIN, self.Action.EXCLUDE) and self.factor is not None:
            errors["factor"] = "Only boost and bury rules take a factor: leave this empty."
        # context
        if self.context == self.Context.ITEM:
            if self.context_item_id is None:
                errors["context_item"] = "Choose the item whose similar list this rule changes."
            elif pin and self.context_item_id == self.target_item_id:
                errors["target_item"] = (
                    "An item never appears in its own similar list: it cannot be pinned there."
                )
        elif self.context_item_id is not None:
            errors["context_item"] = "Leave this empty unless the context is an item."
        if self.context == self.Context.CATEGORY:
            if not self.context_category.strip():
                errors["context_category"] = "Enter the category (exact name) this rule applies in."
        elif self.context_category:
            errors["context_category"] = "Leave this empty unless the context is a category."
        # dates
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The end must be after the start."
        if errors:
            raise ValidationError(errors)


class BackgroundJob(models.Model):
    """Long work started from the admin (encode, train): what runs, how far it is, its result."""

    class Kind(models.TextChoices):
        ENCODE = "encode", "encode items"
        TRAIN = "train", "train a model"
        ACTIVATE = "activate", "activate a model version"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)  # 0..1
    message = models.CharField(max_length=500, blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "background job"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"


class ServedList(models.Model):
    """The items one recommendation response served (sampled; feeds the dashboard's coverage)."""

    endpoint = models.CharField(max_length=32)
    item_ids = ArrayField(models.BigIntegerField())
    served_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-served_at", "-id"]

    def __str__(self) -> str:
        return f"{self.endpoint}: {len(self.item_ids)} items"


class CacheEntry(models.Model):
    """A row of the plugin's own database cache (``shop_recs.api.throttles``): throttle
    counters shared by every web process when no shared cache is named (``THROTTLE_CACHE``).
    The columns are those of Django's ``DatabaseCache`` table, which reads and writes it."""

    cache_key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField()
    expires = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "shop_recs_cache"
        verbose_name_plural = "cache entries"

    def __str__(self) -> str:
        return self.cache_key


class Experiment(models.Model):
    """An A/B test of serving configurations (its arms) on one surface or all of them.

    Running from ``starts_at`` until ``ends_at`` or until stopped. Every shopper with an id
    (customer, else the browser's anonymous shopper id) is assigned to one arm by a salted
    hash of that id (``shop_recs.catalog.services.experiments.arm_for``): sticky across
    requests, processes and servers. At most one experiment runs per surface at a time.
    """

    class Surface(models.TextChoices):
        SIMILAR = "similar", "similar items"
        RECOMMENDATIONS = "recommendations", "recommendations"
        SEARCH = "search", "search"
        ALL = "all", "all lists"

    name = models.CharField(max_length=200, unique=True)
    surface = models.CharField(max_length=20, choices=Surface.choices, default=Surface.ALL)
    salt = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Mixed into the assignment hash (set from the name when empty). Changing it "
        "reshuffles every shopper.",
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    promoted_arm = models.ForeignKey(
        "Arm", null=True, blank=True, related_name="+", on_delete=models.SET_NULL
    )
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: object, **kwargs: object) -> None:
        if not self.salt:
            self.salt = self.name
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def is_running(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return (
            self.stopped_at is None
            and self.starts_at <= now
            and (self.ends_at is None or now < self.ends_at)
        )

    def covers(self, surface: str) -> bool:
        return self.surface in (self.Surface.ALL, surface)

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must be after the start."})


class Arm(models.Model):
    """One serving configuration of an experiment and its share of the shoppers."""

    class Strategy(models.TextChoices):
        MODEL = "model", "model (then content, then popular)"
        CONTENT = "content", "content similarity only (then popular)"
        POPULAR = "popular", "popular items only"

    class Rules(models.TextChoices):
        LIVE = "live", "the live rules"
        OFF = "off", "no rules"

    experiment = models.ForeignKey(Experiment, related_name="arms", on_delete=models.CASCADE)
    name = models.CharField(max_length=50)
    is_control = models.BooleanField(default=False)
    share = models.FloatField(default=50.0, help_text="Weight of this arm (e.g. 50 and 50).")
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        related_name="arms",
        on_delete=models.PROTECT,
        help_text="Empty: the active model.",
    )
    similar_space = models.CharField(
        max_length=16,
        choices=Space.choices,
        blank=True,
        default="",
        help_text="Space of similar items when a request names none (empty: the default).",
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.MODEL)
    rules = models.CharField(max_length=8, choices=Rules.choices, default=Rules.LIVE)
    extra_rules = models.ManyToManyField(
        MerchRule,
        blank=True,
        related_name="arms",
        help_text="Rules applied in this arm only, also while disabled (promoting the arm "
        "enables them).",
    )

    class Meta:
        ordering = ["experiment_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="recs_arm_name"),
            models.CheckConstraint(condition=Q(share__gte=0), name="recs_arm_share_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name}: {self.name}" if self.experiment_id else self.name


class Exposure(models.Model):
    """One list served to a shopper in an experiment (written in batches from the spool)."""

    list_id = models.CharField(max_length=32, unique=True)
    experiment = models.ForeignKey(Experiment, related_name="exposures", on_delete=models.CASCADE)
    arm = models.ForeignKey(Arm, related_name="exposures", on_delete=models.CASCADE)
    shopper = models.CharField(max_length=300)
    surface = models.CharField(max_length=20)
    item_ids = ArrayField(models.BigIntegerField())
    # the model version that served it (None: no model, e.g. the popular strategy); the model
    # versions page shows the online results of each version from these
    model_version_id = models.IntegerField(null=True, blank=True, db_index=True)
    served_at = models.DateTimeField()

    class Meta:
        ordering = ["-served_at", "-id"]
        indexes = [
            models.Index(fields=["experiment", "served_at"], name="recs_exposure_exp_time"),
            models.Index(fields=["shopper", "-served_at"], name="recs_exposure_shopper_time"),
        ]

    def __str__(self) -> str:
        return f"list {self.list_id} ({self.arm_id})"


class Attribution(models.Model):
    """A click, cart add or purchase credited to one served list (and so to its arm).

    Clicks and cart adds name their list (``list_id`` and ``position`` sent by track.js and
    the tracking helpers); a purchase is credited to the last list that showed the item to
    the shopper within ``EXPERIMENT_ATTRIBUTION_SECONDS`` before it. Each interaction is
    credited at most once (unique ``interaction``).
    """

    class Kind(models.TextChoices):
        CLICK = "click", "click"
        CART = "cart", "cart add"
        PURCHASE = "purchase", "purchase"

    interaction = models.OneToOneField(
        Interaction, related_name="attribution", on_delete=models.CASCADE
    )
    exposure = models.ForeignKey(Exposure, related_name="attributions", on_delete=models.CASCADE)
    experiment = models.ForeignKey(
        Experiment, related_name="attributions", on_delete=models.CASCADE
    )
    arm = models.ForeignKey(Arm, related_name="attributions", on_delete=models.CASCADE)
    shopper = models.CharField(max_length=300)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    item_id = models.BigIntegerField()
    position = models.PositiveIntegerField(null=True, blank=True)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["experiment", "kind"], name="recs_attrib_exp_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on list {self.exposure_id}"
