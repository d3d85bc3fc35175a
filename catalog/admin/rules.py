"""Admin of merchandising rules."""

from django.contrib import admin

from catalog.models import MerchRule


@admin.register(MerchRule)
class MerchRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "action", "target", "context", "is_enabled", "starts_at", "ends_at")
