"""A tiny storefront for the tracking and widget tests (ROOT_URLCONF = "tests.storefront_urls"):
product pages tracked by the decorator and the DetailView mixin, a page with both widgets and
both scripts, and an API base that always fails (widget.js error handling)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.urls import include, path, re_path
from django.views.generic import DetailView

from shop_recs.catalog.models import Item
from shop_recs.storefront.tracking import TrackProductViewMixin, track_product_view


def _item(request: HttpRequest, sku: str) -> Item:
    return Item.objects.get(external_id=sku)


@track_product_view(_item)
def product_page(request: HttpRequest, sku: str) -> HttpResponse:
    if not Item.objects.filter(external_id=sku).exists():
        raise Http404("no such product")
    return HttpResponse(f"product {sku}")


def item_page(request: HttpRequest, external_id: str) -> HttpResponse:
    return product_page(request, external_id)


@track_product_view(lambda request, sku: sku)
def failing_page(request: HttpRequest, sku: str) -> HttpResponse:
    return HttpResponse("server error", status=500)


class ItemDetail(TrackProductViewMixin, DetailView):
    model = Item
    slug_field = "external_id"
    slug_url_kwarg = "sku"

    def render_to_response(self, context: dict, **kwargs: object) -> HttpResponse:
        return HttpResponse(f"detail {self.object.external_id}")


PAGE = """{% load shop_recs %}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ sku }}</title>
<meta name="shop-recs-item" content="{{ sku }}"></head>
<body>
<div id="server-similar">{% similar_items sku k=3 %}</div>
<div id="server-recommended">{% recommended_for request k=3 %}</div>
<div id="similar" data-shop-recs="similar" data-item-id="{{ sku }}" data-k="{{ k }}"
     data-currency="EUR"></div>
<div id="recommended" data-shop-recs="recommended" data-k="3"></div>
<button id="cart" data-shop-recs-cart="{{ sku }}">Add to cart</button>
<span id="plain">plain</span>
{% shop_recs_scripts api=api track_views=views %}
</body></html>"""


def widget_page(request: HttpRequest, sku: str) -> HttpResponse:
    template = engines["django"].from_string(PAGE)
    api = request.GET.get("api") or None
    k = request.GET.get("k") or "2"
    views = bool(request.GET.get("views"))
    return HttpResponse(template.render({"sku": sku, "api": api, "k": k, "views": views}, request))


def broken_api(request: HttpRequest, rest: str = "") -> HttpResponse:
    return JsonResponse({"detail": "down"}, status=500)


urlpatterns = [
    path("shop/<str:sku>/", product_page, name="product"),
    path("p/<str:external_id>/", item_page, name="item-page"),
    path("broken/<str:sku>/", failing_page),
    path("detail/<str:sku>/", ItemDetail.as_view()),
    path("page/<str:sku>/", widget_page),
    re_path(r"^broken-api/(?P<rest>.*)$", broken_api),
    path("api/v1/", include("shop_recs.api.urls")),
]
