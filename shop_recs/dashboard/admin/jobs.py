"""Admin of background jobs (encode, train) started from the admin: read-only, with progress.

The list and a running job's page reload themselves every few seconds while a job is queued or
running. Nobody adds or edits a job here (the actions that start them are on the model versions
page and the dashboard); superusers may delete old ones.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from shop_recs.catalog.models import BackgroundJob
from shop_recs.dashboard.admin.site import admin_url, site

ACTIVE = (BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING)
REFRESH_SECONDS = 3


def progress_bar(job: BackgroundJob) -> str:
    share = min(max(job.progress or 0.0, 0.0), 1.0)
    return format_html(
        '<progress value="{}" max="1" title="{}%">{}%</progress> {}%',
        f"{share:.3f}",
        f"{share * 100:.0f}",
        f"{share * 100:.0f}",
        f"{share * 100:.0f}",
    )


@admin.register(BackgroundJob, site=site)
class BackgroundJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "progress_display",
        "message",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "elapsed",
    )
    list_filter = ("kind", "status")
    list_select_related = ("created_by",)
    fields = (
        "kind",
        "status",
        "progress_display",
        "message",
        "params_display",
        "result_display",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "elapsed",
    )
    readonly_fields = fields
    change_list_template = "admin/shop_recs_catalog/backgroundjob/change_list.html"
    change_form_template = "admin/shop_recs_catalog/backgroundjob/change_form.html"

    @admin.display(description="progress", ordering="progress")
    def progress_display(self, obj: BackgroundJob) -> str:
        return progress_bar(obj)

    @admin.display(description="time")
    def elapsed(self, obj: BackgroundJob) -> str:
        if obj.started_at is None:
            return "—"
        end = obj.finished_at or timezone.now()
        return f"{(end - obj.started_at).total_seconds():.1f}s"

    @admin.display(description="parameters")
    def params_display(self, obj: BackgroundJob) -> str:
        params = dict(obj.params or {})
        ids = params.get("item_ids")
        if isinstance(ids, list) and len(ids) > 20:
            params["item_ids"] = f"{len(ids)} items: {ids[:20]}…"
        return format_html("<pre>{}</pre>", json.dumps(params, indent=2, default=str))

    @admin.display(description="result")
    def result_display(self, obj: BackgroundJob) -> str:
        if not obj.result:
            return "—"
        text = format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2, default=str))
        version = obj.result.get("version") if isinstance(obj.result, dict) else None
        if obj.kind == BackgroundJob.Kind.TRAIN and isinstance(version, int):
            url = admin_url("shop_recs_catalog_modelversion_change", version)
            return format_html('{}<a href="{}">model version {}</a>', text, url, version)
        return text

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # jobs are written by the job service only; staff view them

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser) and super().has_delete_permission(request, obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "recs_refresh": (
                REFRESH_SECONDS if BackgroundJob.objects.filter(status__in=ACTIVE).exists() else 0
            ),
        }
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        job = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "recs_refresh": REFRESH_SECONDS if job is not None and job.status in ACTIVE else 0,
        }
        return super().change_view(request, object_id, form_url, extra_context)
