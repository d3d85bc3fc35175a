from django.contrib import admin
from django.utils.html import format_html

from catalog.models import Customer, Interaction, Item, ItemImage, ItemStats


class ItemImageInline(admin.TabularInline):
    model = ItemImage
    extra = 0
    fields = ("preview", "file", "source_url", "position", "width", "height", "status", "error")
    readonly_fields = ("preview", "width", "height", "status", "error")

    @admin.display(description="image")
    def preview(self, obj: ItemImage) -> str:
        if obj.file:
            return format_html('<img src="{}" style="max-height:64px">', obj.file.url)
        return obj.source_url or "-"


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("external_id", "title", "category", "brand", "price", "in_stock", "is_active")
    list_filter = ("is_active", "in_stock", "category", "brand")
    search_fields = ("external_id", "title", "description")
    readonly_fields = ("created_at", "updated_at")
    inlines = [ItemImageInline]
    list_per_page = 50


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("external_id", "user", "created_at")
    search_fields = ("external_id", "user__username", "user__email")
    raw_id_fields = ("user",)


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
