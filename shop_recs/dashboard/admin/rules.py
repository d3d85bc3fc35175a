"""Admin of merchandising rules (pin, boost, bury, exclude; see ``catalog.merchandising``).

Plain model permissions (view/add/change/delete merchrule) decide who may do what. The
validation is ``MerchRule.clean()``, so this form and any other ModelForm share it.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from shop_recs.catalog import services
from shop_recs.catalog.models import MerchRule
from shop_recs.dashboard.admin.site import site
from shop_recs.ranking import merchandising


def _live_q() -> Q:
    now = timezone.now()
    return (
        Q(is_enabled=True)
        & (Q(starts_at__isnull=True) | Q(starts_at__lte=now))
        & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))
    )


class LiveNowFilter(admin.SimpleListFilter):
    title = "live now"
    parameter_name = "live"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [("yes", "yes"), ("no", "no")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(_live_q())
        if self.value() == "no":
            return queryset.exclude(_live_q())
        return queryset


class MerchRuleForm(forms.ModelForm):
    """The fields of a rule; ``MerchRule.clean()`` checks that they fit together (a pin needs
    an active item and a position, boost > 1, 0 < bury < 1, the context's item or category,
    the end after the start) and names the field of each error."""

    class Meta:
        model = MerchRule
        fields = (
            "name",
            "action",
            "is_enabled",
            "priority",
            "target",
            "target_item",
            "target_value",
            "context",
            "context_item",
            "context_category",
            "position",
            "factor",
            "starts_at",
            "ends_at",
            "note",
        )
        widgets = {"note": forms.Textarea(attrs={"rows": 3})}


@admin.register(MerchRule, site=site)
class MerchRuleAdmin(admin.ModelAdmin):
    form = MerchRuleForm
    list_display = (
        "name",
        "action",
        "target_display",
        "context_display",
        "position_or_factor",
        "priority",
        "starts_at",
        "ends_at",
        "is_enabled",
        "live_now",
    )
    list_display_links = ("name",)
    list_filter = ("action", "target", "context", "is_enabled", LiveNowFilter)
    search_fields = (
        "name",
        "note",
        "target_value",
        "context_category",
        "target_item__external_id",
        "target_item__title",
        "context_item__external_id",
        "context_item__title",
    )
    autocomplete_fields = ("target_item", "context_item")
    list_select_related = ("target_item", "context_item")
    readonly_fields = ("created_by", "created_at", "updated_at")
    date_hierarchy = "created_at"
    actions = ["enable", "disable"]
    fieldsets = (
        (None, {"fields": ("name", "action", "is_enabled", "priority")}),
        (
            "What it applies to",
            {
                "fields": ("target", "target_item", "target_value"),
                "description": "An item, or every item of a brand or category (exact name). "
                "A pin rule pins one active item.",
            },
        ),
        (
            "Where",
            {
                "fields": ("context", "context_item", "context_category"),
                "description": "Everywhere; the similar list of one item; or lists in one "
                "category (a category filter, or the similar list of an item of it).",
            },
        ),
        (
            "How",
            {
                "fields": ("position", "factor"),
                "description": "Pin: the position (1 is first). Boost: a factor above 1. "
                "Bury: a factor between 0 and 1. Exclude: neither. An exclude rule wins "
                "over a pin of the same item.",
            },
        ),
        ("When", {"fields": ("starts_at", "ends_at")}),
        (None, {"fields": ("note", "created_by", "created_at", "updated_at")}),
    )

    @admin.display(description="target")
    def target_display(self, obj: MerchRule) -> str:
        if obj.target == MerchRule.Target.ITEM:
            return f"item {obj.target_item.external_id}" if obj.target_item else "item ?"
        return f"{obj.target} {obj.target_value}"

    @admin.display(description="context")
    def context_display(self, obj: MerchRule) -> str:
        if obj.context == MerchRule.Context.ITEM:
            ext = obj.context_item.external_id if obj.context_item else "?"
            return f"similar to {ext}"
        if obj.context == MerchRule.Context.CATEGORY:
            return f"category {obj.context_category}"
        return "everywhere"

    @admin.display(description="position / factor")
    def position_or_factor(self, obj: MerchRule) -> str:
        if obj.action == MerchRule.Action.PIN:
            return f"#{obj.position}" if obj.position else "-"
        if obj.factor is not None:
            return f"x {obj.factor:g}"
        return "-"

    @admin.display(description="live now", boolean=True)
    def live_now(self, obj: MerchRule) -> bool:
        return obj.is_live()

    def save_model(
        self, request: HttpRequest, obj: MerchRule, form: forms.ModelForm, change: bool
    ) -> None:
        services.merch_rule_save(rule=obj, user=request.user)

    @admin.action(description="Enable selected rules", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected rules", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet, enabled: bool) -> None:
        count = queryset.update(is_enabled=enabled, updated_at=timezone.now())
        merchandising.clear_cache()  # update() sends no post_save
        state = "enabled" if enabled else "disabled"
        self.message_user(request, f"{count} rules {state}.")
