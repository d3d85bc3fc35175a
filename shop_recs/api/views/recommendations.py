"""Recommendations for known shoppers and for anonymous sessions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from shop_recs.api import serializers as s
from shop_recs.api.base import PluginAPIView
from shop_recs.api.parsers import LimitedJSONParser
from shop_recs.api.permissions import ReadPublicWriteAuthenticated
from shop_recs.api.views.common import ERROR, READ_ERRORS, _clean_path_id, _external_id_param
from shop_recs.api.views.lists import _similarity_filters
from shop_recs.catalog import selectors
from shop_recs.catalog.models import Customer
from shop_recs.conf import recs_settings
from shop_recs.ranking import recommend, served


def _may_read_customer(request: Request, customer: Customer | None) -> bool:
    """Staff/tokens with ``view_customer``, or the shopper's own logged-in user."""
    user = request.user
    if not (user and user.is_authenticated):
        return False
    if user.has_perm("shop_recs_catalog.view_customer"):
        return True
    return customer is not None and customer.user_id == user.pk


class QueryPermission(ReadPublicWriteAuthenticated):
    """A POST that only reads (a recommendation query): the rules of reads apply."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if recs_settings.READ_REQUIRES_AUTH:
            return bool(request.user and request.user.is_authenticated)
        return True


def _recommendations_response(
    request: Request,
    result: recommend.RecommendationResult,
    *,
    customer_id: str | None,
    session_id: str | None,
    ignored: list[str],
) -> Response:
    served.record("recommendations", [r.item.id for r in result.results])
    return Response(
        {
            "customer_id": customer_id,
            "session_id": session_id,
            "model_version": result.model_version,
            "history": [h.external_id for h in result.history],
            "ignored_item_ids": ignored,
            "results": s.recommendations_data(result.results, request),
        }
    )


@extend_schema(parameters=[_external_id_param()])
class CustomerRecommendationsView(PluginAPIView):
    """Recommendations for a known shopper: their recent events through the active model,
    else content similarity to them, else popular items; each result says why."""

    @extend_schema(
        operation_id="customers_recommendations",
        parameters=[s.RecommendationQuerySerializer],
        responses={200: s.RecommendationOutputSerializer, 400: ERROR, **READ_ERRORS},
    )
    def get(self, request: Request, external_id: str) -> Response:
        external_id = _clean_path_id(external_id)
        customer = selectors.customer_get(external_id=external_id)
        if not _may_read_customer(request, customer):
            raise PermissionDenied("Reading a customer's recommendations needs view_customer.")
        if customer is None:
            raise NotFound(f"No customer with external_id {external_id!r}.")
        query = s.RecommendationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        result = recommend.recommendations(
            customer=customer,
            k=values["k"],
            filters=_similarity_filters(values),
            include_purchased=values["include_purchased"],
        )
        return _recommendations_response(
            request, result, customer_id=external_id, session_id=None, ignored=[]
        )


class RecommendationsView(PluginAPIView):
    """Recommendations for anonymous and new shoppers: a session id and/or the items viewed
    recently, optionally a known customer (that needs view_customer, or being that customer)."""

    permission_classes = [QueryPermission]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="recommendations_create",
        request=s.RecommendationRequestSerializer,
        responses={200: s.RecommendationOutputSerializer, 400: ERROR, **READ_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = s.RecommendationRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        customer = None
        customer_id = values.get("customer_id")
        if customer_id:
            customer = selectors.customer_get(external_id=customer_id)
            if not _may_read_customer(request, customer):
                raise PermissionDenied(
                    "Recommendations for a customer_id need view_customer (or that customer's "
                    "own login); anonymous shoppers send session_id and recent_item_ids."
                )
        session_id = values.get("session_id") or ""
        recent = list(values.get("recent_item_ids") or [])
        _, ignored = recommend.shopper_history(recent_item_ids=recent)
        filters = {**values.get("filters", {}), "exclude": values.get("exclude") or ()}
        result = recommend.recommendations(
            customer=customer,
            session_id=session_id,
            recent_item_ids=recent,
            k=values["k"],
            filters=_similarity_filters(filters),
            include_purchased=values["include_purchased"],
        )
        return _recommendations_response(
            request,
            result,
            customer_id=customer_id or None,
            session_id=session_id or None,
            ignored=ignored,
        )
