"""The recommendations dashboard of the admin, at ``/admin/shop_recs/dashboard/``.

One page for operators: items and the share encoded per space, encoding failures, the task
queue's backlog, background jobs, the active model and its metrics, the coverage of served
recommendations, and a "try it" box for similar items and semantic search (through the same
selectors as the REST API). Staff with ``view_item`` see it; starting an encode job from it
needs ``change_item``.

The page is added to the default admin site's URLs (:func:`install`), and the admin index links
to it through the site's ``index_template`` (``django.contrib.admin`` comes first in
``INSTALLED_APPS``, so an app's own ``admin/index.html`` would never be found).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from shop_recs.catalog import selectors, services, vectors
from shop_recs.catalog.media import image_url
from shop_recs.catalog.models import (
    BackgroundJob,
    Item,
    ItemEmbedding,
    ItemEncoding,
    ItemImage,
    ModelVersion,
    Space,
)
from shop_recs.dashboard.admin.site import admin_url, site
from shop_recs.dashboard.previews import cards, similar_in_space
from shop_recs.ranking import served
from shop_recs.ranking.similar import default_similar_space, items_search
from shop_recs.search.query import EncoderUnavailable, search_query_vectors
from shop_recs.search.types import SimilarFilters
from shop_recs.workers.queues import queue_backlog

VIEW_PERMISSION = "shop_recs_catalog.view_item"
CHANGE_PERMISSION = "shop_recs_catalog.change_item"
SPACES = (Space.TEXT, Space.IMAGE, Space.CONTENT, Space.HYBRID)
TRY_K_DEFAULT, TRY_K_MAX = 10, 50
MAX_QUERY_CHARS = 500
COVERAGE_LAST_N = 1000
ENCODE_SCOPES = {"needing": "pending, failed and stale items", "failed": "failed items"}


# --------------------------------------------------------------------------- reads


def encoding_overview() -> dict[str, Any]:
    """Item counts, items per space (and the share of all items), failures, pending."""
    total = Item.objects.count()
    served = ItemEmbedding.objects.filter(vectors.served_spaces_q())
    per_space = {
        vectors.base_space(space): n
        for space, n in served.values_list("space").annotate(n=Count("id")).order_by()
    }
    dims: dict[str, list[str]] = {}
    for space, dim, encoder, n in (
        served.values_list("space", "dim", "encoder")
        .annotate(n=Count("id"))
        .order_by("space", "-n")
    ):
        dims.setdefault(vectors.base_space(space), []).append(f"{encoder} {dim}-d ({n})")
    spaces = [
        {
            "space": space.value,
            "count": per_space.get(space.value, 0),
            "share": per_space.get(space.value, 0) / total if total else 0.0,
            "encoders": ", ".join(dims.get(space.value, [])),
        }
        for space in SPACES
    ]
    return {
        "total": total,
        "active": Item.objects.filter(is_active=True).count(),
        "spaces": spaces,
        "failed": ItemEncoding.objects.filter(status=ItemEncoding.Status.FAILED).count(),
        "pending": Item.objects.exclude(
            encoding__status__in=[ItemEncoding.Status.DONE, ItemEncoding.Status.FAILED]
        ).count(),
        "images_failed": ItemImage.objects.filter(status=ItemImage.Status.FAILED).count(),
        "images_pending": ItemImage.objects.filter(status=ItemImage.Status.PENDING).count(),
    }


def active_model_summary() -> dict[str, Any] | None:
    version = ModelVersion.objects.filter(is_active=True).first()
    if version is None:
        return None
    metrics = version.metrics or {}
    return {
        "version": version,
        "url": admin_url("shop_recs_catalog_modelversion_change", version.pk),
        "recall": metrics.get("recall@10"),
        "ndcg": metrics.get("ndcg@10"),
        "popularity_recall": (metrics.get("popularity") or {}).get("recall@10"),
        "counts": sorted((version.data_counts or {}).items()),
    }


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(str(value)), low), high)
    except (TypeError, ValueError):
        return default


def try_it(params: Any, *, hybrid: bool) -> dict[str, Any]:
    """The "try it" box: similar items of an item in a space, or a semantic search. Problems
    (unknown item, not encoded, no encoder) become messages."""
    spaces = [s.value for s in SPACES if s != Space.HYBRID or hybrid]
    out: dict[str, Any] = {
        "spaces": spaces,
        "item": str(params.get("item") or "").strip()[:255],
        "space": str(params.get("space") or "") or default_similar_space(),
        "q": str(params.get("q") or "").strip(),
        "k": _int(params.get("k"), TRY_K_DEFAULT, 1, TRY_K_MAX),
        "mode": "",
    }
    if "item" in params:
        out["mode"] = "similar"
        out.update(_try_similar(out["item"], out["space"], out["k"]))
    elif "q" in params:
        out["mode"] = "search"
        out.update(_try_search(out["q"], out["k"]))
    return out


def _try_similar(external_id: str, space: str, k: int) -> dict[str, Any]:
    if not external_id:
        return {"message": "Enter an item's external id."}
    if space not in Space.values:
        return {"message": f"Unknown space {space!r}: choose one of {', '.join(Space.values)}."}
    query = selectors.item_get(external_id=external_id)
    if query is None:
        return {"message": f"No item with external id {external_id!r}."}
    image = next(
        (im for im in query.images.all() if im.status == ItemImage.Status.READY and im.file), None
    )
    query_card = {
        "item": query,
        "image_url": image_url(image.file.name if image else ""),
        "url": admin_url("shop_recs_catalog_item_change", query.pk),
    }
    preview = similar_in_space(external_id=external_id, space=space, k=k, filters=SimilarFilters())
    return {"query_item": query_card, "cards": preview.cards, "message": preview.message}


def _try_search(text: str, k: int) -> dict[str, Any]:
    if not text:
        return {"message": "Enter a search text."}
    if len(text) > MAX_QUERY_CHARS:
        return {"message": f"The search text is longer than {MAX_QUERY_CHARS} characters."}
    try:
        query_vectors = search_query_vectors(text)
    except EncoderUnavailable as exc:
        return {"message": str(exc)}
    results = items_search(query_vectors=query_vectors, k=k, filters=SimilarFilters())
    found = cards(results)
    return {
        "cards": found,
        "search_spaces": sorted(query_vectors),
        "message": "" if found else "No encoded item matches (encode the catalogue first).",
    }


# --------------------------------------------------------------------------- views


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    active = active_model_summary()
    recent_jobs = list(BackgroundJob.objects.select_related("created_by")[:8])
    last_n = _int(request.GET.get("n"), COVERAGE_LAST_N, 1, 100_000)
    coverage = served.coverage(last_n=last_n)
    context = {
        **site.each_context(request),
        "title": "Recommendations dashboard",
        "encoding": encoding_overview(),
        "failed_url": admin_url("shop_recs_catalog_item_changelist")
        + "?encoding__status__exact=failed",
        "backlog": queue_backlog(),
        "jobs": recent_jobs,
        "jobs_running": sum(j.status == BackgroundJob.Status.RUNNING for j in recent_jobs),
        "active_model": active,
        "coverage": coverage,
        # a list, not the dict: an endpoint called "items" would shadow dict.items in a template
        "coverage_endpoints": sorted(coverage["by_endpoint"].items()),
        "served_buffered": served.pending(),
        "try": try_it(request.GET, hybrid=active is not None),
        "can_encode": request.user.has_perm(CHANGE_PERMISSION),
        "encode_scopes": ENCODE_SCOPES,
    }
    return TemplateResponse(request, "admin/shop_recs/dashboard.html", context)


def encode_view(request: HttpRequest) -> HttpResponse:
    """POST: start an encode job (pending/failed/stale items, or the failed ones)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not (request.user.has_perm(VIEW_PERMISSION) and request.user.has_perm(CHANGE_PERMISSION)):
        raise PermissionDenied
    scope = request.POST.get("scope", "needing")
    if scope not in ENCODE_SCOPES:
        messages.error(request, "Unknown selection of items to encode.")
        return HttpResponseRedirect(admin_url("shop_recs_dashboard"))
    job = services.job_start(
        kind=BackgroundJob.Kind.ENCODE, params={"scope": scope}, user=request.user
    )
    messages.success(
        request,
        format_html("Encoding of {} started as background job #{}.", ENCODE_SCOPES[scope], job.pk),
    )
    return HttpResponseRedirect(admin_url("shop_recs_catalog_backgroundjob_change", job.pk))


def install(site: admin.AdminSite) -> None:
    """Add the dashboard's URLs to ``site`` and link it from the site's index page."""
    if getattr(site, "_shop_recs_dashboard", False):
        return
    original = site.get_urls

    def get_urls() -> list[Any]:
        return [
            path(
                "shop_recs/dashboard/", site.admin_view(dashboard_view), name="shop_recs_dashboard"
            ),
            path(
                "shop_recs/dashboard/encode/",
                site.admin_view(encode_view),
                name="shop_recs_dashboard_encode",
            ),
            *original(),
        ]

    site.get_urls = get_urls  # type: ignore[method-assign]
    if site.index_template is None:
        site.index_template = "admin/shop_recs/index.html"
    site._shop_recs_dashboard = True  # type: ignore[attr-defined]


install(site)
