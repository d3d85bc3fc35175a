"""Admin of items (thumbnails, encode status per space, similar-item previews per space),
interactions and item statistics."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils.html import format_html

from shop_recs.catalog import services, vectors
from shop_recs.catalog.models import (
    BackgroundJob,
    Interaction,
    Item,
    ItemEmbedding,
    ItemImage,
    ItemStats,
    Space,
)
from shop_recs.dashboard.admin.site import admin_url, site
from shop_recs.dashboard.previews import similar_previews


class MissingSpaceFilter(admin.SimpleListFilter):
    """Items with or without a vector in a space (e.g. no image vector: no usable image)."""

    title = "vector"
    parameter_name = "vector"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        out = []
        for space in Space.values:
            out += [(f"has-{space}", f"has {space}"), (f"no-{space}", f"no {space}")]
        return out

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value() or ""
        has, _, space = value.partition("-")
        if space not in Space.values or has not in ("has", "no"):
            return queryset
        exists = Exists(
            ItemEmbedding.objects.filter(item=OuterRef("pk"), space=vectors.space_key(space))
        )
        return queryset.filter(exists if has == "has" else ~exists)


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


@admin.register(Item, site=site)
class ItemAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "external_id",
        "title",
        "category",
        "brand",
        "price",
        "in_stock",
        "is_active",
        "encode_status",
    )
    list_filter = (
        "is_active",
        "in_stock",
        "encoding__status",
        MissingSpaceFilter,
        "category",
        "brand",
    )
    list_display_links = ("thumbnail", "external_id")
    search_fields = ("external_id", "title", "description")
    readonly_fields = ("created_at", "updated_at")
    # encoding status and vectors per space: the "Encoding" section of the change form
    inlines = [ItemImageInline]
    list_per_page = 50
    list_select_related = ("encoding",)
    actions = ["reencode"]

    change_form_template = "admin/shop_recs_catalog/item/change_form.html"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("images")

    @admin.display(description="image")
    def thumbnail(self, obj: Item) -> str:
        for image in obj.images.all():  # prefetched, in position order
            if image.status != ItemImage.Status.READY or not image.file:
                continue  # a pending URL is not shown before it was checked and downloaded
            url = image.file.url
            return format_html(
                '<img src="{}" alt="" loading="lazy" class="recs-thumb" '
                'style="height:48px;width:48px;object-fit:cover">',
                url,
            )
        return "—"

    @admin.display(description="encoding", ordering="encoding__status")
    def encode_status(self, obj: Item) -> str:
        state = getattr(obj, "encoding", None)
        return state.status if state else "pending"

    def _start_encoding(self, request: HttpRequest, ids: list[int]) -> BackgroundJob:
        """Re-encode these items as a background job (Celery), whose page shows its progress."""
        services.items_mark_pending(item_ids=ids)
        job = services.job_start(
            kind=BackgroundJob.Kind.ENCODE,
            params={"item_ids": ids, "force": True},
            user=request.user,
        )
        url = admin_url("shop_recs_catalog_backgroundjob_change", job.pk)
        self.message_user(
            request,
            format_html(
                '{} item(s) queued for encoding as <a href="{}">background job #{}</a>.',
                len(ids),
                url,
                job.pk,
            ),
        )
        return job

    @admin.action(description="Re-encode selected items", permissions=["change"])
    def reencode(self, request, queryset) -> None:
        self._start_encoding(request, list(queryset.values_list("pk", flat=True)))

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<path:object_id>/reencode/",
                self.admin_site.admin_view(self.reencode_view),
                name="shop_recs_catalog_item_reencode",
            )
        ]
        return extra + super().get_urls()

    def reencode_view(self, request: HttpRequest, object_id: str) -> Any:
        """POST: re-encode one item (the button on its page)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        item = get_object_or_404(Item, pk=object_id)
        if not self.has_change_permission(request, item):
            raise PermissionDenied
        self._start_encoding(request, [item.pk])
        return HttpResponseRedirect(admin_url("shop_recs_catalog_item_change", item.pk))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        extra_context = dict(extra_context or {})
        item = Item.objects.filter(pk=object_id).select_related("encoding").first()
        if item is not None:
            extra_context["recs_item"] = item
            embeddings = (
                item.embeddings.filter(vectors.served_spaces_q()).defer("vector").order_by("space")
            )
            extra_context["recs_embeddings"] = list(embeddings)
            extra_context["recs_encoding"] = getattr(item, "encoding", None)
            extra_context["recs_previews"] = similar_previews(item)
            extra_context["recs_can_change"] = self.has_change_permission(request, item)
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Interaction, site=site)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "event", "value", "customer", "session_id", "item")
    list_filter = ("event",)
    search_fields = ("customer__external_id", "session_id", "item__external_id", "idempotency_key")
    raw_id_fields = ("customer", "item")
    date_hierarchy = "occurred_at"
    list_select_related = ("customer", "item")


@admin.register(ItemStats, site=site)
class ItemStatsAdmin(admin.ModelAdmin):
    list_display = ("item", "score", "views", "carts", "purchases", "ratings", "last_event_at")
    ordering = ("-score",)
    raw_id_fields = ("item",)
    list_select_related = ("item",)
