"""Admin of customers: recent interactions and current recommendations with their source and
reasons, and a "preview as anonymous session" form."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path

from shop_recs.catalog import services
from shop_recs.catalog.media import image_url
from shop_recs.catalog.models import Customer, Interaction, Item, ItemImage
from shop_recs.dashboard.admin.site import site
from shop_recs.dashboard.previews import cards
from shop_recs.ranking import recommend
from shop_recs.search.types import SimilarFilters

RECENT_INTERACTIONS = 20
PREVIEW_CHOICES = 300
PREVIEW_MAX_ITEMS = 20


def _thumbnails(item_ids: list[int]) -> dict[int, str]:
    """The first stored image of each item, as a URL (never a pending URL's)."""
    out: dict[int, str] = {}
    rows = (
        ItemImage.objects.filter(item_id__in=item_ids, status=ItemImage.Status.READY)
        .exclude(file="")
        .order_by("item_id", "position", "id")
        .values_list("item_id", "file")
    )
    for item_id, file in rows:
        out.setdefault(item_id, image_url(file))
    return out


def _parse_ids(values: list[str]) -> list[str]:
    """External ids from repeated fields and comma/whitespace separated text, in order, once."""
    seen: list[str] = []
    for value in values:
        for part in value.replace(",", " ").split():
            if part and part not in seen:
                seen.append(part)
    return seen


@admin.register(Customer, site=site)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("external_id", "user", "created_at")
    search_fields = ("external_id", "user__username", "user__email")
    raw_id_fields = ("user",)
    change_form_template = "admin/shop_recs_catalog/customer/change_form.html"
    change_list_template = "admin/shop_recs_catalog/customer/change_list.html"
    actions = ["purge_personal_data"]

    @admin.action(
        description="Erase personal data (delete these customers and all their events)",
        permissions=["delete"],
    )
    def purge_personal_data(self, request: HttpRequest, queryset: Any) -> Any:
        """The erasure of a data subject's request (services.customer_purge), after a page
        that says what will be deleted; logged with the admin user."""
        customers = list(queryset.order_by("pk"))
        if request.POST.get("confirm") == "yes":
            by = f"admin user {request.user.get_username()!r}"
            reports = [services.customer_purge(customer=c, by=by) for c in customers]
            self.message_user(
                request,
                f"Erased {len(reports)} customer(s) and "
                f"{sum(r.interactions for r in reports)} events.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Erase personal data?",
            "previews": [services.customer_purge(customer=c, dry_run=True) for c in customers],
            "customers": customers,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/shop_recs_catalog/customer/purge_confirmation.html", context
        )

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="shop_recs_catalog_customer_preview",
            )
        ]
        return extra + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        extra_context = dict(extra_context or {})
        customer = Customer.objects.filter(pk=object_id).first()
        if customer is not None:
            recent = list(
                Interaction.objects.filter(customer=customer)
                .select_related("item")
                .order_by("-occurred_at", "-id")[:RECENT_INTERACTIONS]
            )
            thumbs = _thumbnails([i.item_id for i in recent])
            result = recommend.recommendations(customer=customer, k=10)
            extra_context.update(
                recs_customer=customer,
                recs_interactions=[(i, thumbs.get(i.item_id, "")) for i in recent],
                recs_result=result,
                recs_cards=cards(result.results),
                recs_recent_ids=" ".join(
                    dict.fromkeys(i.item.external_id for i in reversed(recent))
                ),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def preview_view(self, request: HttpRequest) -> TemplateResponse:
        """Recommendations for an anonymous session that viewed the picked items (GET form)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        picked = _parse_ids(request.GET.getlist("items") + request.GET.getlist("ids"))
        errors: list[str] = []
        if len(picked) > PREVIEW_MAX_ITEMS:
            errors.append(f"Pick at most {PREVIEW_MAX_ITEMS} items; the first ones are used.")
            picked = picked[:PREVIEW_MAX_ITEMS]
        category = request.GET.get("category", "").strip() or None
        result = ignored = None
        if picked or "run" in request.GET:
            _, ignored = recommend.shopper_history(recent_item_ids=picked)
            result = recommend.recommendations(
                recent_item_ids=picked, k=10, filters=SimilarFilters(category=category)
            )
        popular = (
            Item.objects.filter(is_active=True)
            .order_by("-stats__score", "id")
            .values_list("external_id", "title")[:PREVIEW_CHOICES]
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Preview recommendations as an anonymous session",
            "choices": list(popular),
            "picked": picked,
            "picked_text": " ".join(picked),
            "category": category or "",
            "categories": sorted(
                c for c in Item.objects.values_list("category", flat=True).distinct() if c
            ),
            "result": result,
            "result_cards": cards(result.results) if result else [],
            "ignored": ignored or [],
            "errors": errors,
        }
        return TemplateResponse(request, "admin/shop_recs_catalog/customer/preview.html", context)
