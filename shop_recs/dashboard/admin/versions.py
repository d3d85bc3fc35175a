"""Admin of trained model versions: metrics, data counts, charts and the model selection's
candidates; train, activate, roll back.

Versions are read-only (they come from training). Staff with ``view_modelversion`` see the
pages; the actions (train now, activate, roll back) are POST-only views that also need
``change_modelversion``. Training, activation and roll back run as background jobs on the
train queue (see :mod:`shop_recs.catalog.services.jobs`): activating writes a version's item
vectors and builds their index, minutes on a large catalogue, never in the admin's request.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from shop_recs.catalog import services
from shop_recs.catalog.models import BackgroundJob, ModelVersion
from shop_recs.dashboard import charts
from shop_recs.dashboard.admin.site import admin_url, site
from shop_recs.ranking.activation import rollback_target
from shop_recs.ranking.results import experiment_results, experiments_of_version

INFO_FIELDS = (
    "kind",
    "status",
    "is_active",
    "model_version",
    "dim",
    "duration",
    "created_at",
    "finished_at",
    "activated_at",
    "artefact",
    "note",
    "error",
)


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _metric_order(name: str) -> tuple[int, int, int, str]:
    """recall@10, ndcg@10, ... first (by k, then the usual metric order), counts after."""
    base, _, k = name.partition("@")
    prefer = ("recall", "ndcg", "hit_rate", "map", "coverage")
    rank = prefer.index(base) if base in prefer else len(prefer)
    return (0 if k else 1, int(k) if k.isdigit() else 0, rank, name)


def _svg(markup: str) -> SafeString:
    # charts.line_chart escapes every piece of text it puts into the markup
    return mark_safe(markup)  # noqa: S308


def training_curves(version: ModelVersion) -> tuple[str, str]:
    """SVG charts of a version's history: loss per epoch (each run), validation metrics per
    epoch (the runs that had a validation slice)."""
    history = [h for h in version.history or [] if isinstance(h, dict)]
    runs: dict[str, list[dict[str, Any]]] = {}
    for h in history:
        runs.setdefault(str(h.get("run") or h.get("phase") or "training"), []).append(h)
    loss = [
        charts.Series(f"loss ({run})", [(h.get("epoch"), h.get("train_loss", h.get("loss")))
                                         for h in rows], dashed=i > 0)
        for i, (run, rows) in enumerate(runs.items())
    ]  # fmt: skip
    keys = ("recall@10", "smoothed_recall@10", "ndcg@10")
    scored = {run: rows for run, rows in runs.items() if any(k in h for h in rows for k in keys)}
    metric_series = []
    for run, rows in scored.items():
        for key in keys:
            if any(key in h for h in rows):
                name = key if len(scored) == 1 else f"{key} ({run})"
                metric_series.append(
                    charts.Series(name, [(h.get("epoch"), h.get(key)) for h in rows])
                )
    return (
        charts.line_chart(
            [s for s in loss if s.points],
            title="Training loss per epoch",
            x_label="epoch",
            y_label="loss",
            integer_x=True,
        ),
        charts.line_chart(
            metric_series,
            title="Validation metrics per epoch",
            x_label="epoch",
            y_label="metric",
            integer_x=True,
        ),
    )


def versions_chart(versions: list[ModelVersion]) -> str:
    """SVG chart of the held-out metrics of every ready version (x = version id)."""
    rows = sorted((v for v in versions if v.metrics), key=lambda v: v.pk)

    def points(get: Any) -> list[tuple[float, float | None]]:
        return [(v.pk, get(v.metrics)) for v in rows]

    series = [
        charts.Series("recall@10", points(lambda m: m.get("recall@10"))),
        charts.Series("ndcg@10", points(lambda m: m.get("ndcg@10"))),
        charts.Series(
            "popularity recall@10",
            points(lambda m: (m.get("popularity") or {}).get("recall@10")),
            dashed=True,
        ),
    ]
    return charts.line_chart(
        [s for s in series if any(y is not None for _, y in s.points)],
        title="Held-out metrics across versions",
        x_label="model version",
        y_label="metric",
        integer_x=True,
    )


def _canonical(params: Any) -> str:
    return json.dumps(params or {}, sort_keys=True, default=str)


def _compact(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return "defaults"
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(params.items()))


def selection_rows(version: ModelVersion) -> list[dict[str, Any]]:
    """The candidates model selection tried (its table), each marked ``chosen`` or not: the
    row whose family and parameters are the chosen configuration's (when no row matches
    exactly, the best row of the chosen family by recall@10)."""
    selection = version.selection or {}
    table = [r for r in selection.get("table") or [] if isinstance(r, dict)]
    chosen = selection.get("chosen") or {}
    family = chosen.get("family")
    marked = [
        i
        for i, r in enumerate(table)
        if r.get("family") == family
        and _canonical(r.get("params")) == _canonical(chosen.get("params"))
    ]
    if not marked:
        same = [
            i
            for i, r in enumerate(table)
            if r.get("family") == family and isinstance(r.get("recall@10"), int | float)
        ]
        if same:
            marked = [max(same, key=lambda i: table[i]["recall@10"])]
    return [
        {
            "family": r.get("family", "?"),
            "params": _compact(r.get("params")),
            "recall": _number(r.get("recall@10")),
            "ndcg": _number(r.get("ndcg@10")),
            "seconds": _number(r.get("seconds"), 1),
            "status": str(r.get("status") or ""),
            "chosen": i in marked[:1],
        }
        for i, r in enumerate(table)
    ]


def online_results(version: ModelVersion) -> list[dict[str, Any]]:
    """The experiments this version served lists in: per experiment, the rows of its arms and
    of control (shoppers, lists, rates with intervals, difference to control)."""
    from shop_recs.dashboard.admin.experiments import results_rows

    out = []
    for experiment, arm_ids in experiments_of_version(version_id=version.pk):
        results = experiment_results(experiment=experiment)
        rows = [r for r in results_rows(results) if r["arm"].pk in arm_ids or r["control"]]
        out.append(
            {
                "experiment": experiment,
                "url": admin_url("shop_recs_catalog_experiment_results", experiment.pk),
                "rows": rows,
                "arm_ids": arm_ids,
                "srm": results.srm.mismatch,
            }
        )
    return out


@admin.register(ModelVersion, site=site)
class ModelVersionAdmin(admin.ModelAdmin):
    """Trained model versions: parameters, held-out metrics, data counts, charts (read-only)."""

    list_display = (
        "id",
        "status",
        "is_active",
        "recall_at_10",
        "ndcg_at_10",
        "popularity_recall_at_10",
        "data_users",
        "data_items",
        "data_interactions",
        "duration",
        "created_at",
    )
    list_display_links = ("id",)
    list_filter = ("status", "is_active")
    fields = INFO_FIELDS
    readonly_fields = INFO_FIELDS
    actions = ["activate_selected"]
    change_list_template = "admin/shop_recs_catalog/modelversion/change_list.html"
    change_form_template = "admin/shop_recs_catalog/modelversion/change_form.html"

    # ------------------------------------------------------------------ columns

    @admin.display(description="recall@10")
    def recall_at_10(self, obj: ModelVersion) -> str:
        return _number(obj.metrics.get("recall@10"))

    @admin.display(description="ndcg@10")
    def ndcg_at_10(self, obj: ModelVersion) -> str:
        return _number(obj.metrics.get("ndcg@10"))

    @admin.display(description="popularity recall@10")
    def popularity_recall_at_10(self, obj: ModelVersion) -> str:
        return _number((obj.metrics.get("popularity") or {}).get("recall@10"))

    @admin.display(description="users")
    def data_users(self, obj: ModelVersion) -> str:
        return _number(obj.data_counts.get("users"))

    @admin.display(description="items")
    def data_items(self, obj: ModelVersion) -> str:
        return _number(obj.data_counts.get("items"))

    @admin.display(description="positives of interactions")
    def data_interactions(self, obj: ModelVersion) -> str:
        counts = obj.data_counts
        if "positives" not in counts:
            return _number(counts.get("interactions"))
        return f"{counts['positives']} of {_number(counts.get('interactions'))}"

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, obj: ModelVersion) -> str:
        return "—" if obj.duration_seconds is None else f"{obj.duration_seconds:.1f}s"

    # ------------------------------------------------------------------ permissions

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from training (Train now, recs_train, the train_model task)

    # ------------------------------------------------------------------ pages

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("train/", view(self.train_view), name="shop_recs_catalog_modelversion_train"),
            path(
                "rollback/",
                view(self.rollback_view),
                name="shop_recs_catalog_modelversion_rollback",
            ),
            path(
                "<path:object_id>/activate/",
                view(self.activate_view),
                name="shop_recs_catalog_modelversion_activate",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        versions = list(ModelVersion.objects.filter(status=ModelVersion.Status.READY))
        extra_context = {
            **(extra_context or {}),
            "recs_can_change": self.has_change_permission(request),
            "recs_active": ModelVersion.objects.filter(is_active=True).first(),
            "recs_versions_chart": _svg(versions_chart(versions)),
        }
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        version = self.get_object(request, object_id)
        if version is not None:
            metrics = version.metrics or {}
            popularity = metrics.get("popularity") or {}
            loss_chart, metric_chart = training_curves(version)
            versions = list(ModelVersion.objects.filter(status=ModelVersion.Status.READY))
            can_change = self.has_change_permission(request, version)
            extra_context.update(
                recs_version=version,
                recs_metrics=[
                    (name, _number(metrics[name]), _number(popularity.get(name)))
                    for name in sorted(metrics, key=_metric_order)
                    if not isinstance(metrics[name], dict)
                ],
                recs_counts=sorted((version.data_counts or {}).items()),
                recs_params=sorted((version.params or {}).items()),
                recs_selection=version.selection or {},
                recs_selection_chosen=(version.selection or {}).get("chosen") or {},
                recs_selection_rows=selection_rows(version),
                recs_loss_chart=_svg(loss_chart),
                recs_metric_chart=_svg(metric_chart),
                recs_versions_chart=_svg(versions_chart(versions)),
                recs_online=online_results(version),
                recs_can_change=can_change,
                recs_can_activate=(
                    can_change
                    and version.status == ModelVersion.Status.READY
                    and not version.is_active
                ),
                # nothing on this page is edited: no save buttons
                show_save=False,
                show_save_and_continue=False,
                show_save_and_add_another=False,
                show_delete=False,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # superusers only, and never the active version (its vectors serve every request)
        if obj is not None and obj.is_active:
            return False
        return bool(request.user.is_superuser) and super().has_delete_permission(request, obj)

    # ------------------------------------------------------------------ actions

    def _post_with_change(self, request: HttpRequest) -> HttpResponse | None:
        """None when the request may run an action, else the refusal."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        return None

    def _changelist(self) -> HttpResponseRedirect:
        return HttpResponseRedirect(admin_url("shop_recs_catalog_modelversion_changelist"))

    def train_view(self, request: HttpRequest) -> HttpResponse:
        """Start a training job and show it."""
        refused = self._post_with_change(request)
        if refused is not None:
            return refused
        running = self._running_job(request, BackgroundJob.Kind.TRAIN, "Training")
        if running is not None:
            return HttpResponseRedirect(
                admin_url("shop_recs_catalog_backgroundjob_change", running.pk)
            )
        force = request.POST.get("force") in ("1", "on", "true")
        job = services.job_start(
            kind=BackgroundJob.Kind.TRAIN,
            params={"force": force, "note": f"admin: train now by {request.user.get_username()}"},
            user=request.user,
        )
        self.message_user(
            request,
            format_html(
                "Training started as background job #{}; this page follows its progress.", job.pk
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(admin_url("shop_recs_catalog_backgroundjob_change", job.pk))

    def _running_job(self, request: HttpRequest, kind: str, label: str) -> BackgroundJob | None:
        """A job of ``kind`` still queued or running (then shown instead of a second one)."""
        running = BackgroundJob.objects.filter(
            kind=kind,
            status__in=[BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING],
        ).first()
        if running is not None:
            self.message_user(
                request,
                f"{label} job #{running.pk} is {running.status}; wait for it to finish.",
                messages.WARNING,
            )
        return running

    def _start_activation(
        self, request: HttpRequest, params: dict[str, Any], what: str
    ) -> BackgroundJob:
        job = services.job_start(kind=BackgroundJob.Kind.ACTIVATE, params=params, user=request.user)
        self.message_user(
            request,
            format_html(
                "{} started as background job #{}; serving stays on the active model until "
                "the new vectors and their index are ready.",
                what,
                job.pk,
            ),
            messages.SUCCESS,
        )
        return job

    def _activate(self, request: HttpRequest, version: ModelVersion) -> BackgroundJob | None:
        if version.status != ModelVersion.Status.READY:
            self.message_user(
                request,
                f"Model {version.pk} is {version.status}: only a ready version can be activated.",
                messages.ERROR,
            )
            return None
        if version.is_active:
            self.message_user(request, f"Model {version.pk} is already active.", messages.INFO)
            return None
        running = self._running_job(request, BackgroundJob.Kind.ACTIVATE, "Activation")
        if running is not None:
            return running
        self.log_change(request, version, "activation requested")
        return self._start_activation(
            request, {"version": version.pk}, f"Activation of model {version.pk}"
        )

    def activate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        refused = self._post_with_change(request)
        if refused is not None:
            return refused
        version = get_object_or_404(ModelVersion, pk=object_id if object_id.isdigit() else -1)
        job = self._activate(request, version)
        if job is not None:
            return HttpResponseRedirect(admin_url("shop_recs_catalog_backgroundjob_change", job.pk))
        return HttpResponseRedirect(admin_url("shop_recs_catalog_modelversion_change", version.pk))

    def rollback_view(self, request: HttpRequest) -> HttpResponse:
        refused = self._post_with_change(request)
        if refused is not None:
            return refused
        target = rollback_target()
        if target is None:
            self.message_user(
                request,
                "Nothing to roll back to: no earlier activated model is ready.",
                messages.WARNING,
            )
            return self._changelist()
        job = self._running_job(request, BackgroundJob.Kind.ACTIVATE, "Activation")
        if job is None:
            job = self._start_activation(
                request, {"rollback": True}, f"Roll back to model {target.pk}"
            )
        return HttpResponseRedirect(admin_url("shop_recs_catalog_backgroundjob_change", job.pk))

    @admin.action(description="Activate the selected version", permissions=["change"])
    def activate_selected(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        versions = list(queryset[:2])
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.WARNING)
            return
        self._activate(request, versions[0])
