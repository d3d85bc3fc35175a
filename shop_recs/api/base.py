"""The base of every plugin endpoint: its own authentication, permissions, throttles, parsers,
renderers, error format and OpenAPI schema class.

Inside a shop's project the plugin cannot rely on ``REST_FRAMEWORK`` defaults: a shop that left
them at DRF's (``AllowAny``, no throttles) would otherwise open every write to anonymous
callers, and one with its own exception handler would change the plugin's error format. The
standalone service's settings repeat the same choices as defaults for its own views.

Bodies are JSON only (a form or multipart body is a 415); the one endpoint that takes file
uploads adds the multipart parser itself, so the schema advertises exactly what is accepted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema as spectacular_extend_schema
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.views import APIView

from shop_recs.api.exceptions import exception_handler
from shop_recs.api.parsers import LimitedJSONParser
from shop_recs.api.permissions import ReadPublicWriteAuthenticated
from shop_recs.api.throttles import AnonThrottle, UserThrottle
from shop_recs.catalog.db import serving_reads
from shop_recs.conf import recs_settings


class PluginAutoSchema(AutoSchema):
    """Operations anyone may call list the empty security requirement (``{}``) beside token
    and cookie: public reads, and the recommendation query (a POST that only reads).
    drf-spectacular recognises DRF's own permission classes only, not the plugin's."""

    def get_auth(self) -> list[dict[str, Any]]:
        auths = super().get_auth()
        public = getattr(self.view, "schema_public", None)
        if public is None:
            public = self.method in SAFE_METHODS and not getattr(self.view, "private_reads", False)
        if public and not recs_settings.READ_REQUIRES_AUTH and {} not in auths:
            auths.append({})
        return auths


class PluginAPIView(APIView):
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [ReadPublicWriteAuthenticated]
    throttle_classes = [AnonThrottle, UserThrottle]
    parser_classes = [LimitedJSONParser]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    schema = PluginAutoSchema()
    #: True/False: whether the schema lists anonymous access (None: public unless the method
    #: writes or the view's reads are private)
    schema_public: bool | None = None
    #: True on the serving endpoints (similar, search, recommendations): their reads of the
    #: catalogue may go to SHOP_RECS["READ_DATABASE"] (shop_recs.catalog.db)
    serving = False

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.serving:
            return super().dispatch(request, *args, **kwargs)
        with serving_reads():
            return super().dispatch(request, *args, **kwargs)

    def get_exception_handler(self) -> Any:
        return exception_handler


def extend_schema(**kwargs: Any) -> Callable[[Any], Any]:
    """drf-spectacular's ``extend_schema`` on the plugin's schema class, whatever the host's
    ``DEFAULT_SCHEMA_CLASS``: on a view method, drf-spectacular builds its override from that
    project setting (DRF's own AutoSchema in a shop that never set it, which cannot render an
    operation), so the plugin's class is given to it first."""

    def decorator(f: Any) -> Any:
        if inspect.isfunction(f) and not getattr(f, "kwargs", {}).get("schema"):
            f.kwargs = {**getattr(f, "kwargs", {}), "schema": PluginAutoSchema}
        return spectacular_extend_schema(**kwargs)(f)

    return decorator
