"""Refuse oversized request bodies before Django or DRF buffer them."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from shop_recs.conf import recs_settings


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return JsonResponse({"detail": f"Invalid Content-Length header: {raw!r}."}, status=400)
        limit = recs_settings.MAX_REQUEST_BYTES
        if length > limit:
            return JsonResponse(
                {"detail": f"Request body too large: {length} bytes (limit {limit} bytes)."},
                status=413,
            )
        return self.get_response(request)
