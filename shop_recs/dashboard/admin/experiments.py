"""Admin of experiments (A/B tests): create one with its arms, see its results, stop it or
promote an arm. The results page (``<id>/results/``) shows per arm the shoppers, lists,
rates and revenue with 95 % intervals, the difference to control, the sample-ratio check
(red when it fails) and SVG charts over time. Stop and promote are POST-only and need
``change_experiment``."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from shop_recs.catalog.models import Arm, Experiment, ModelVersion
from shop_recs.catalog.services import experiments as exp_services
from shop_recs.dashboard import charts
from shop_recs.dashboard.admin.site import admin_url, site
from shop_recs.ranking import results as exp_results
from shop_recs.ranking.dataset import TrainingError
from shop_recs.recsys.evaluation.abtest import Interval


def pct(i: Interval) -> str:
    return f"{100 * i.value:.2f} % [{100 * i.low:.2f}, {100 * i.high:.2f}]"


def pp(i: Interval) -> str:
    return f"{100 * i.value:+.2f} pp [{100 * i.low:+.2f}, {100 * i.high:+.2f}]"


def money(i: Interval, signed: bool = False) -> str:
    if not (math.isfinite(i.low) and math.isfinite(i.high)):
        return f"{i.value:{'+' if signed else ''}.2f} [—]"
    f = "+.2f" if signed else ".2f"
    return f"{i.value:{f}} [{i.low:{f}}, {i.high:{f}}]"


class ArmFormSet(forms.models.BaseInlineFormSet):
    """Two arms at least, positive shares, one control (the first arm when none is ticked)."""

    def clean(self) -> None:
        super().clean()
        kept = [
            f
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE") and f.cleaned_data.get("name")
        ]
        if len(kept) < 2:
            raise ValidationError("An experiment needs at least two arms.")
        if sum(float(f.cleaned_data.get("share") or 0) for f in kept) <= 0:
            raise ValidationError("The shares of the arms must add up to more than 0.")
        controls = [f for f in kept if f.cleaned_data.get("is_control")]
        if len(controls) > 1:
            raise ValidationError("Tick one arm as control.")
        if not controls:
            kept[0].instance.is_control = True


class ArmInline(admin.TabularInline):
    model = Arm
    formset = ArmFormSet
    extra = 2
    fields = (
        "name",
        "is_control",
        "share",
        "model_version",
        "strategy",
        "similar_space",
        "rules",
        "extra_rules",
    )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "model_version":  # only versions that can serve
            kwargs["queryset"] = ModelVersion.objects.filter(status=ModelVersion.Status.READY)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ExperimentForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = ("name", "surface", "starts_at", "ends_at", "salt", "note")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        surface = data.get("surface")
        if surface and self.instance.stopped_at is None:
            others = Experiment.objects.filter(stopped_at__isnull=True).exclude(pk=self.instance.pk)
            for other in others:
                overlap = surface == Experiment.Surface.ALL or other.surface in (
                    Experiment.Surface.ALL,
                    surface,
                )
                ends = data.get("ends_at")
                later = (
                    other.ends_at is not None
                    and data.get("starts_at")
                    and (other.ends_at <= data["starts_at"])
                )
                earlier = ends is not None and ends <= other.starts_at
                if overlap and not later and not earlier:
                    raise ValidationError(
                        f"Experiment '{other.name}' runs on the same surface at the same time: "
                        "stop it first (one experiment per surface)."
                    )
        return data


def _svg(markup: str) -> SafeString:
    return mark_safe(markup)  # noqa: S308 - charts.line_chart escapes every text


def results_charts(results: exp_results.Results) -> list[SafeString]:
    unit = results.bucket
    ctr = [
        charts.Series(name, [(x, 100 * y) for x, y, _ in points])
        for name, points in results.series.items()
    ]
    lists = [
        charts.Series(name, [(x, n) for x, _, n in points])
        for name, points in results.series.items()
    ]
    x_label = f"{unit}s since the start's {unit}"
    return [
        _svg(
            charts.line_chart(
                ctr, title="Cumulative CTR per arm", x_label=x_label, y_label="CTR (%)"
            )
        ),
        _svg(
            charts.line_chart(
                lists, title="Lists served per arm (cumulative)", x_label=x_label, y_label="lists"
            )
        ),
    ]


def results_rows(results: exp_results.Results) -> list[dict[str, Any]]:
    rows = []
    for r in results.arms:
        d = r.diff
        rows.append(
            {
                "arm": r.arm,
                "control": r is results.control,
                "shoppers": r.shoppers,
                "expected": results.srm.expected[results.arms.index(r)]
                if results.srm.expected
                else None,
                "lists": r.lists,
                "ctr": pct(r.ctr),
                "cart_rate": pct(r.cart_rate),
                "conversion": pct(r.conversion),
                "revenue": money(r.revenue_per_shopper),
                "d_ctr": pp(d["ctr"]) if d else "",
                "d_ctr_sig": bool(d) and d["ctr"].significant,
                "d_cart": pp(d["cart_rate"]) if d else "",
                "d_cart_sig": bool(d) and d["cart_rate"].significant,
                "d_conv": pp(d["conversion"]) if d else "",
                "d_conv_sig": bool(d) and d["conversion"].significant,
                "d_rev": money(d["revenue_per_shopper"], signed=True) if d else "",
                "d_rev_sig": bool(d) and d["revenue_per_shopper"].significant,
            }
        )
    return rows


@admin.register(Experiment, site=site)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    inlines = [ArmInline]
    list_display = ("name", "surface", "state", "starts_at", "ends_at", "results_link")
    list_filter = ("surface",)
    search_fields = ("name",)
    readonly_fields = ("stopped_at", "promoted_arm")
    fields = ("name", "surface", "starts_at", "ends_at", "salt", "note", "stopped_at",
              "promoted_arm")  # fmt: skip

    @admin.display(description="state")
    def state(self, obj: Experiment) -> str:
        if obj.promoted_arm_id:
            return f"promoted {obj.promoted_arm.name}"
        if obj.stopped_at:
            return "stopped"
        return "running" if obj.is_running() else "scheduled or ended"

    @admin.display(description="results")
    def results_link(self, obj: Experiment) -> str:
        return format_html(
            '<a href="{}">results</a>', admin_url("shop_recs_catalog_experiment_results", obj.pk)
        )

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/results/",
                view(self.results_view),
                name="shop_recs_catalog_experiment_results",
            ),
            path(
                "<path:object_id>/stop/",
                view(self.stop_view),
                name="shop_recs_catalog_experiment_stop",
            ),
            path(
                "<path:object_id>/promote/",
                view(self.promote_view),
                name="shop_recs_catalog_experiment_promote",
            ),
            *super().get_urls(),
        ]

    def response_add(self, request: HttpRequest, obj: Experiment, *args: Any) -> HttpResponse:
        exp_services.clear_cache()
        return super().response_add(request, obj, *args)

    def _experiment(self, request: HttpRequest, object_id: str) -> Experiment:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Experiment, pk=object_id if object_id.isdigit() else -1)

    def results_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        experiment = self._experiment(request, object_id)
        try:
            exp_services.flush()  # what is spooled so far
        except Exception as exc:  # the spool is unreachable: show what is written
            self.message_user(request, f"The experiment log could not be read: {exc}",
                              messages.WARNING)  # fmt: skip
        results = exp_results.experiment_results(experiment=experiment)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Results of {experiment.name}",
            "experiment": experiment,
            "results": results,
            "rows": results_rows(results),
            "charts": results_charts(results),
            "can_change": self.has_change_permission(request, experiment),
        }
        return TemplateResponse(request, "admin/shop_recs_catalog/experiment/results.html", context)

    def _post(self, request: HttpRequest, object_id: str) -> Experiment | HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self._experiment(request, object_id)
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        return experiment

    def stop_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        experiment = self._post(request, object_id)
        if isinstance(experiment, HttpResponse):
            return experiment
        exp_results.experiment_stop(experiment=experiment)
        self.log_change(request, experiment, "stopped")
        self.message_user(request, f"Experiment '{experiment.name}' stopped.", messages.SUCCESS)
        return HttpResponseRedirect(
            admin_url("shop_recs_catalog_experiment_results", experiment.pk)
        )

    def promote_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        experiment = self._post(request, object_id)
        if isinstance(experiment, HttpResponse):
            return experiment
        arm_id = request.POST.get("arm", "")
        arm = experiment.arms.filter(pk=int(arm_id) if arm_id.isdigit() else -1).first()
        if arm is None:
            self.message_user(request, "Choose an arm of this experiment.", messages.ERROR)
        else:
            try:
                changes = exp_results.experiment_promote(experiment=experiment, arm=arm)
            except (TrainingError, FileNotFoundError, OSError, ValueError) as exc:
                self.message_user(request, f"Arm {arm.name} was not promoted: {exc}",
                                  messages.ERROR)  # fmt: skip
            else:
                self.log_change(request, experiment, f"promoted arm {arm.name}")
                self.message_user(
                    request,
                    f"Arm {arm.name} promoted, experiment stopped: {'; '.join(changes)}.",
                    messages.SUCCESS,
                )
        return HttpResponseRedirect(
            admin_url("shop_recs_catalog_experiment_results", experiment.pk)
        )
