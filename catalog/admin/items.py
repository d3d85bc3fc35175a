from django.contrib import admin
from django.db import models
from django.utils.html import format_html

from catalog import services
from catalog.models import (
    Interaction,
    Item,
    ItemEmbedding,
    ItemEncoding,
    ItemImage,
    ItemStats,
)


class ItemImageInline(admin.TabularInline):
    model = ItemImage
    extra = 0
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fields = ("preview", "file", "source_url", "position", "width", "height", "status", "error")
    readonly_fields = ("preview", "width", "height", "status", "error")

    @admin.display(description="image")
    def preview(self, obj: ItemImage) -> str:
        if obj.file:
            return format_html('<img src="{}" style="max-height:64px">', obj.file.url)
        return obj.source_url or "-"


class ItemEncodingInline(admin.StackedInline):
    model = ItemEncoding
    can_delete = False
    extra = 0
    fields = ("status", "error", "requested_at", "encoded_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ItemEmbeddingInline(admin.TabularInline):
    model = ItemEmbedding
    extra = 0
    can_delete = False
    fields = ("space", "dim", "encoder", "encoder_version", "content_hash", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "title",
        "category",
        "brand",
        "price",
        "in_stock",
        "is_active",
        "encode_status",
    )
    list_filter = ("is_active", "in_stock", "encoding__status", "category", "brand")
    search_fields = ("external_id", "title", "description")
    readonly_fields = ("created_at", "updated_at")
    inlines = [ItemImageInline, ItemEncodingInline, ItemEmbeddingInline]
    list_per_page = 50
    list_select_related = ("encoding",)
    actions = ["reencode"]

    @admin.display(description="encoding", ordering="encoding__status")
    def encode_status(self, obj: Item) -> str:
        state = getattr(obj, "encoding", None)
        return state.status if state else "pending"

    @admin.action(description="Re-encode selected items", permissions=["change"])
    def reencode(self, request, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        services.items_request_encoding(item_ids=ids)
        self.message_user(request, f"{len(ids)} items queued for encoding.")


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "event", "value", "customer", "session_id", "item")
    list_filter = ("event",)
    search_fields = ("customer__external_id", "session_id", "item__external_id", "idempotency_key")
    raw_id_fields = ("customer", "item")
    date_hierarchy = "occurred_at"
    list_select_related = ("customer", "item")


@admin.register(ItemStats)
class ItemStatsAdmin(admin.ModelAdmin):
    list_display = ("item", "score", "views", "carts", "purchases", "ratings", "last_event_at")
    ordering = ("-score",)
    raw_id_fields = ("item",)
    list_select_related = ("item",)
