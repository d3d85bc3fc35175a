"""The base of every plugin endpoint: its own authentication, permissions, throttles, parsers,
renderers, error format and OpenAPI schema class.

Inside a shop's project the plugin cannot rely on ``REST_FRAMEWORK`` defaults: a shop that left
them at DRF's (``AllowAny``, no throttles) would otherwise open every write to anonymous
callers, and one with its own exception handler would change the plugin's error format. The
standalone service's settings repeat the same choices as defaults for its own views.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.views import APIView

from shop_recs.api.exceptions import exception_handler
from shop_recs.api.parsers import LimitedJSONParser
from shop_recs.api.permissions import ReadPublicWriteAuthenticated
from shop_recs.api.throttles import AnonThrottle, UserThrottle


class PluginAPIView(APIView):
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [ReadPublicWriteAuthenticated]
    throttle_classes = [AnonThrottle, UserThrottle]
    parser_classes = [LimitedJSONParser, FormParser, MultiPartParser]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    schema = AutoSchema()

    def get_exception_handler(self) -> Any:
        return exception_handler
