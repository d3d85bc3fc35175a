"""Input and output serializers, one pair per operation (HackSoft styleguide)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from shop_recs.catalog.media import image_url
from shop_recs.catalog.models import Customer, Event, Interaction, Item, ItemImage
from shop_recs.catalog.validation import (
    EARLIEST_TIMESTAMP,
    EXTERNAL_ID,
    SURROGATE_MESSAGE,
    surrogate_fields,
)
from shop_recs.conf import recs_settings
from shop_recs.storefront.cards import card_dicts
from shop_recs.storefront.tracking import CLIENT_EVENTS


def external_id_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=255, validators=[EXTERNAL_ID], **kwargs)


class JSONObjectField(serializers.DictField):
    """A JSON object, checked as a whole when the service stores it (NUL, depth, size). Its
    values may be anything JSON holds, ``null`` included (as the schema says)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.JSONField(allow_null=True))
        super().__init__(**kwargs)


class InputSerializer(serializers.Serializer):
    """The base of every input serializer: a lone surrogate (JSON's ``"\\ud800"``) anywhere in
    a field, key or value, is that field's error. No UTF-8 encoder can write one, so it would
    otherwise fail in the database driver, as a 500 that costs the whole request (a batch of
    events included: each event is validated by itself, so only the bad one is rejected)."""

    def to_internal_value(self, data: Any) -> Any:
        bad = surrogate_fields(data)
        if bad:
            raise serializers.ValidationError(
                {name or "non_field_errors": [SURROGATE_MESSAGE] for name in bad}
            )
        return super().to_internal_value(data)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 timestamp with a time zone (``Z`` or an offset), from 1970 on, returned in
    UTC: a timestamp without a zone is ambiguous, and PostgreSQL cannot take every offset
    Python can (``-23:36``), so the value always travels as UTC."""

    default_error_messages = {
        "naive": "Give a time zone: a trailing Z (UTC) or an offset such as +02:00.",
        "range": "Must lie between 1970-01-01T00:00:00Z and the year 9999.",
    }

    def enforce_timezone(self, value: dt.datetime) -> dt.datetime:
        if timezone.is_naive(value):
            self.fail("naive")
        try:
            value = value.astimezone(dt.UTC)
        except OverflowError:
            self.fail("range")
        if value < EARLIEST_TIMESTAMP:
            self.fail("range")
        return value


def k_field() -> serializers.IntegerField:
    """How many results: 1 to SHOP_RECS["SIMILAR_MAX_K"], read when a serializer is built, so
    the schema's ``maximum`` and the check always agree with the setting."""
    return serializers.IntegerField(
        required=False, default=10, min_value=1, max_value=int(recs_settings.SIMILAR_MAX_K)
    )


class _KMixin:
    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()  # type: ignore[misc]
        fields["k"] = k_field()
        return fields


# ------------------------------------------------------------------------ items


class ItemImageOutputSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ItemImage
        fields = [
            "id",
            "url",
            "source_url",
            "position",
            "width",
            "height",
            "size_bytes",
            "checksum",
            "content_type",
            "status",
            "error",
            "created_at",
        ]

    def get_url(self, obj: ItemImage) -> str | None:
        # the stored file; an image registered by URL has none until a worker downloaded and
        # checked it (its origin is ``source_url``)
        if not obj.file:
            return None
        request = self.context.get("request")
        url = obj.file.url
        return request.build_absolute_uri(url) if request else url


class EmbeddingInfoSerializer(serializers.Serializer):
    space = serializers.CharField()
    dim = serializers.IntegerField()
    encoder = serializers.CharField()
    encoder_version = serializers.CharField()
    updated_at = serializers.DateTimeField()


class EncodingStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "done", "failed"])
    error = serializers.CharField(allow_blank=True)
    encoded_at = serializers.DateTimeField(allow_null=True)
    spaces = EmbeddingInfoSerializer(many=True)


class ItemOutputSerializer(serializers.ModelSerializer):
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True, coerce_to_string=False
    )
    images = ItemImageOutputSerializer(many=True, read_only=True)
    encoding = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = [
            "external_id",
            *Item.DATA_FIELDS,
            "images",
            "encoding",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(EncodingStatusSerializer)
    def get_encoding(self, obj: Item) -> dict[str, Any]:
        state = getattr(obj, "encoding", None)  # a missing one-to-one raises AttributeError
        return {
            "status": state.status if state else "pending",
            "error": state.error if state else "",
            "encoded_at": state.encoded_at if state else None,
            "spaces": EmbeddingInfoSerializer(obj.embeddings.all(), many=True).data,
        }


class ItemUpdateInputSerializer(InputSerializer):
    title = serializers.CharField(max_length=500)
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=20000, trim_whitespace=False
    )
    category = serializers.CharField(required=False, allow_blank=True, max_length=200)
    brand = serializers.CharField(required=False, allow_blank=True, max_length=200)
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    attributes = JSONObjectField(required=False)
    in_stock = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)


class ItemCreateInputSerializer(ItemUpdateInputSerializer):
    external_id = external_id_field()


class ItemListQuerySerializer(InputSerializer):
    """The list filters: a value that does not parse is a 400 naming the filter (never ignored)."""

    category = serializers.CharField(required=False, max_length=200)
    brand = serializers.CharField(required=False, max_length=200)
    # (read from a plain dict of the query, not the QueryDict: DRF reads a boolean missing
    # from a form-like input as False)
    in_stock = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)
    price_min = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)
    price_max = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)
    updated_since = AwareDateTimeField(required=False)


class ImageUploadInputSerializer(InputSerializer):
    file = serializers.FileField(allow_empty_file=False, max_length=255)
    position = serializers.IntegerField(min_value=0, max_value=10000, required=False)


class ImageUrlInputSerializer(InputSerializer):
    url = serializers.URLField(max_length=2000)
    position = serializers.IntegerField(min_value=0, max_value=10000, required=False)


# ------------------------------------------------------------------------ customers


class CustomerInputSerializer(InputSerializer):
    external_id = external_id_field()
    attributes = JSONObjectField(required=False)


class CustomerOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["external_id", "attributes", "created_at"]


# ------------------------------------------------------------------------ events


class EventInputSerializer(InputSerializer):
    item_id = serializers.CharField(max_length=255)
    event = serializers.ChoiceField(choices=Event.choices)
    customer_id = serializers.CharField(max_length=255, required=False, allow_null=True)
    session_id = serializers.CharField(max_length=128, required=False, allow_blank=True)
    value = serializers.FloatField(required=False, default=1.0)
    occurred_at = AwareDateTimeField(required=False, allow_null=True)
    idempotency_key = serializers.CharField(max_length=255, required=False, allow_null=True)
    context = JSONObjectField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("customer_id") and not attrs.get("session_id"):
            raise serializers.ValidationError(
                {"customer_id": "Give customer_id or session_id (anonymous sessions)."}
            )
        return attrs


class EventBatchInputSerializer(serializers.Serializer):
    """Documentation of the batch form; events are validated one by one in the view so that
    one bad event does not cost the others."""

    events = EventInputSerializer(many=True)


class InteractionOutputSerializer(serializers.ModelSerializer):
    item_id = serializers.CharField(source="item.external_id")
    customer_id = serializers.SerializerMethodField()

    class Meta:
        model = Interaction
        fields = [
            "id",
            "item_id",
            "customer_id",
            "session_id",
            "event",
            "value",
            "occurred_at",
            "idempotency_key",
            "context",
        ]

    def get_customer_id(self, obj: Interaction) -> str | None:
        return obj.customer.external_id if obj.customer_id else None


class EventSingleOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["created", "duplicate"])
    event = InteractionOutputSerializer()


class EventResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    id = serializers.IntegerField(allow_null=True)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class EventBatchOutputSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = EventResultSerializer(many=True)


def max_batch() -> int:
    return int(recs_settings.EVENTS_MAX_BATCH)


# ------------------------------------------------------------------------ browser tracking

# The shopper of a tracked event is the request's session or login, never the body.
IDENTITY_FIELDS = ("customer_id", "session_id", "user", "user_id", "customer")


class _StrictFieldsMixin:
    """Unknown fields are errors: a tracker sending identity fields must hear that they are
    ignored rather than believe it recorded someone else's event."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {}
            for name in data:
                if name in self.fields:  # type: ignore[attr-defined]
                    continue
                if name in IDENTITY_FIELDS:
                    errors[name] = [
                        "Not accepted: the shopper is the request's own session or login. "
                        "Send events from servers with customer_id to POST /api/v1/events/."
                    ]
                else:
                    errors[name] = ["Unknown field."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)  # type: ignore[misc]


@extend_schema_field(
    {"type": "string", "pattern": f"^({'|'.join(str(e) for e in CLIENT_EVENTS)})$"}
)
class ClientEventField(serializers.ChoiceField):
    """A pattern, not an enum, in the schema: drf-spectacular names every enum of a field
    called "event" alike, and this one would clash with that of POST /events/."""


class TrackEventInputSerializer(_StrictFieldsMixin, InputSerializer):
    """One event of the current shopper (the browser's session or login)."""

    event = ClientEventField(
        choices=[str(e) for e in CLIENT_EVENTS],
        help_text=f"One of {', '.join(str(e) for e in CLIENT_EVENTS)}. Purchases are not "
        "accepted from browsers: shops record them server-side.",
    )
    item_id = serializers.CharField(max_length=255, help_text="The item's external id.")
    key = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=128,
        help_text="Optional idempotency key chosen by the browser (scoped to this shopper).",
    )
    list_id = serializers.RegexField(
        r"^[0-9a-f]{32}$",
        required=False,
        allow_null=True,
        help_text="The list_id of the served list the item was clicked or added from "
        "(experiments credit the list's arm).",
    )
    position = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=1000,
        help_text="The item's place in that list (1 is the first).",
    )

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and data.get("event") == Event.PURCHASE:
            raise serializers.ValidationError(
                {
                    "event": [
                        "Purchases are not accepted from browsers: the shop records them "
                        "server-side (record_purchase or the purchase_completed signal)."
                    ]
                }
            )
        return super().to_internal_value(data)


class TrackBatchInputSerializer(_StrictFieldsMixin, InputSerializer):
    """Several events of the current shopper (at most SHOP_RECS["TRACK_MAX_BATCH"])."""

    events = TrackEventInputSerializer(many=True, allow_empty=False)

    def validate_events(self, value: list[Any]) -> list[Any]:
        limit = int(recs_settings.TRACK_MAX_BATCH)
        if len(value) > limit:
            raise serializers.ValidationError(f"At most {limit} events per batch.")
        return value


class TrackOutputSerializer(serializers.Serializer):
    recorded = serializers.IntegerField(help_text="Events stored.")
    duplicates = serializers.IntegerField(help_text="Repeats of stored events (not stored).")


# ------------------------------------------------------------------------ similarity


class SimilarityFilterSerializer(_KMixin, InputSerializer):
    category = serializers.CharField(required=False, max_length=200)
    brand = serializers.CharField(required=False, max_length=200)
    in_stock = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Default true: only items in stock. false: only items out of stock.",
    )
    price_min = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)
    price_max = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)
    exclude = serializers.CharField(
        required=False, max_length=2000, help_text="Comma-separated external ids to leave out."
    )

    def validate_exclude(self, value: str) -> list[str]:
        return [v.strip() for v in value.split(",") if v.strip()]


class SimilarQuerySerializer(SimilarityFilterSerializer):
    space = serializers.ChoiceField(
        choices=["text", "image", "content", "hybrid"],
        required=False,
        help_text="Default: hybrid (the model's vectors) once a model is active, else content.",
    )


class SearchQuerySerializer(SimilarityFilterSerializer):
    q = serializers.CharField(max_length=1000)


class ItemCardSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    title = serializers.CharField()
    category = serializers.CharField()
    brand = serializers.CharField()
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True, coerce_to_string=False
    )
    in_stock = serializers.BooleanField()
    image = serializers.SerializerMethodField()
    url = serializers.CharField(
        allow_null=True,
        help_text="The product page (SHOP_RECS['ITEM_URL'] or the item source); null when the "
        "shop configured no way to link items.",
    )

    def get_image(self, card: Any) -> str | None:
        return image_url(card.image, self.context.get("request")) or None


class AppliedRuleSerializer(serializers.Serializer):
    """A merchandising rule that changed a result's place (part of its explanation)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=["pin", "boost", "bury"])
    factor = serializers.FloatField(allow_null=True, help_text="Boost or bury factor.")
    position = serializers.IntegerField(allow_null=True, help_text="Pin: the 1-based position.")


def _rules_field() -> AppliedRuleSerializer:
    return AppliedRuleSerializer(
        many=True, help_text="Merchandising rules that moved this result (empty when none)."
    )


class NeighbourSerializer(serializers.Serializer):
    item = ItemCardSerializer(read_only=True)
    score = serializers.FloatField(
        help_text="Similarity in the space; merchandising rules may reorder the list."
    )
    similarity = serializers.DictField(
        child=serializers.FloatField(), help_text="Cosine similarity per space (explanation)."
    )
    rules = _rules_field()


def neighbours_data(results: list[Any], request: Any) -> list[dict[str, Any]]:
    """What NeighbourSerializer(many=True) renders, built directly: this is the hot path of
    every widget, and DRF's per-field machinery costs more than the query behind it."""
    out = []
    for n, card in zip(results, card_dicts(results, request), strict=True):
        price = card["price"]
        card.update(
            price=float(price) if price is not None else None,
            image=card["image"] or None,
            url=card["url"] or None,
        )
        out.append(
            {"item": card, "score": n.score, "similarity": n.similarity, "rules": list(n.rules)}
        )
    return out


class SimilarOutputSerializer(serializers.Serializer):
    item_id = serializers.CharField()
    space = serializers.CharField()
    results = NeighbourSerializer(many=True)
    list_id = serializers.CharField(
        help_text="Id of this served list: send it back with clicks and cart adds (track.js "
        "reads it from the widget)."
    )
    experiment = serializers.CharField(
        allow_null=True, help_text="The experiment this list was served in, or null."
    )
    arm = serializers.CharField(allow_null=True, help_text="The experiment's arm, or null.")


class SearchOutputSerializer(serializers.Serializer):
    q = serializers.CharField()
    spaces = serializers.ListField(child=serializers.CharField())
    results = NeighbourSerializer(many=True)
    list_id = serializers.CharField(
        help_text="Id of this served list: send it back with clicks and cart adds (track.js "
        "reads it from the widget)."
    )
    experiment = serializers.CharField(
        allow_null=True, help_text="The experiment this list was served in, or null."
    )
    arm = serializers.CharField(allow_null=True, help_text="The experiment's arm, or null.")


class RecommendationQuerySerializer(SimilarityFilterSerializer):
    include_purchased = serializers.BooleanField(
        required=False, default=False, help_text="Also recommend items the shopper bought."
    )


class RecommendationFiltersSerializer(serializers.Serializer):
    category = serializers.CharField(required=False, max_length=200)
    brand = serializers.CharField(required=False, max_length=200)
    in_stock = serializers.BooleanField(required=False, default=True)
    price_min = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)
    price_max = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)


def _id() -> serializers.CharField:
    return serializers.CharField(max_length=255)


class RecommendationRequestSerializer(_KMixin, InputSerializer):
    customer_id = serializers.CharField(
        required=False, max_length=255, help_text="A known shopper (needs view_customer)."
    )
    session_id = serializers.CharField(
        required=False,
        max_length=400,
        help_text="An anonymous session whose recorded events are the history: the caller's "
        "own browser session (sent with its session cookie), a signed session id "
        "(shop_recs.storefront.tracking.signed_session_id), or any session id for a token "
        "with view_interaction. Without it, the browser's own session is used.",
    )
    recent_item_ids = serializers.ListField(
        child=_id(), required=False, max_length=100, help_text="Recently viewed, oldest first."
    )
    filters = RecommendationFiltersSerializer(required=False)
    exclude = serializers.ListField(child=_id(), required=False, max_length=1000)
    include_purchased = serializers.BooleanField(required=False, default=False)


class RecommendationSerializer(serializers.Serializer):
    item = ItemCardSerializer(read_only=True)
    score = serializers.FloatField()
    source = serializers.ChoiceField(
        choices=["model", "content", "popular", "rule"],
        help_text="rule: inserted by a merchandising pin rule.",
    )
    reason = serializers.CharField()
    because = serializers.CharField(allow_null=True, help_text="The history item it follows.")
    similarity = serializers.DictField(child=serializers.FloatField())
    rules = _rules_field()


class RecommendationOutputSerializer(serializers.Serializer):
    customer_id = serializers.CharField(allow_null=True)
    session_id = serializers.CharField(allow_null=True)
    model_version = serializers.IntegerField(allow_null=True)
    history = serializers.ListField(child=serializers.CharField())
    ignored_item_ids = serializers.ListField(child=serializers.CharField())
    results = RecommendationSerializer(many=True)
    list_id = serializers.CharField(
        help_text="Id of this served list: send it back with clicks and cart adds (track.js "
        "reads it from the widget)."
    )
    experiment = serializers.CharField(
        allow_null=True, help_text="The experiment this list was served in, or null."
    )
    arm = serializers.CharField(allow_null=True, help_text="The experiment's arm, or null.")


def recommendations_data(results: list[Any], request: Any) -> list[dict[str, Any]]:
    """What RecommendationSerializer(many=True) renders, built directly (hot path)."""
    cards = neighbours_data(results, request)
    for card, r in zip(cards, results, strict=True):
        card.update(source=r.source, reason=r.reason, because=r.because)
    return cards
