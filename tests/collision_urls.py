"""A shop's own URLs beside the plugin's (tests/test_collisions.py): its own view named
"search", its own DRF endpoint under DRF's default throttles, and the plugin's API."""

from django.http import HttpResponse
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView


def shop_search(request):
    return HttpResponse("the shop's own search")


class ShopAnonThrottle(AnonRateThrottle):
    """DRF's AnonRateThrottle (scope "anon", cache key ``throttle_anon_<ip>`` in the default
    cache) at a shop's daily rate."""

    rate = "1000/day"


class ShopPing(APIView):
    """The shop's own DRF endpoint, throttled the way DRF's defaults do."""

    permission_classes = [AllowAny]
    throttle_classes = [ShopAnonThrottle]

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("search/", shop_search, name="search"),
    path("track/", shop_search, name="track"),
    path("shop-api/ping/", ShopPing.as_view(), name="ping"),
    path("api/v1/", include("shop_recs.api.urls")),
]
