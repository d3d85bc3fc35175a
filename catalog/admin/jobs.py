"""Admin of background jobs (encode, train) started from the admin."""

from django.contrib import admin

from catalog.models import BackgroundJob


@admin.register(BackgroundJob)
class BackgroundJobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "progress", "message", "created_at")
