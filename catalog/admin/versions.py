"""Admin of trained model versions."""

from typing import Any

from django.contrib import admin

from catalog.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Trained model versions: parameters, held-out metrics, data counts (read-only)."""

    list_display = ("id", "status", "is_active", "recall_at_10", "duration", "created_at")
    list_filter = ("status", "is_active")
    readonly_fields = [f.name for f in ModelVersion._meta.fields]

    @admin.display(description="recall@10")
    def recall_at_10(self, obj: ModelVersion) -> str:
        value = obj.metrics.get("recall@10")
        return "—" if value is None else f"{value:.4f}"

    @admin.display(description="duration")
    def duration(self, obj: ModelVersion) -> str:
        return "—" if obj.duration_seconds is None else f"{obj.duration_seconds:.1f}s"

    def has_add_permission(self, request: Any) -> bool:
        return False  # versions come from training (recs_train / the train_model task)
