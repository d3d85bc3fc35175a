"""Admin of customers."""

from django.contrib import admin

from catalog.models import Customer


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("external_id", "user", "created_at")
    search_fields = ("external_id", "user__username", "user__email")
    raw_id_fields = ("user",)
