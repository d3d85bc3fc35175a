"""Recommendations for known shoppers and for anonymous sessions."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from shop_recs.api import query as q
from shop_recs.api import serializers as s
from shop_recs.api.base import PluginAPIView, extend_schema
from shop_recs.api.permissions import ReadPublicWriteAuthenticated
from shop_recs.api.views.common import ERROR, READ_ERRORS, _clean_path_id, _external_id_param
from shop_recs.api.views.lists import _similarity_filters
from shop_recs.catalog import selectors
from shop_recs.catalog.models import Customer
from shop_recs.conf import recs_settings
from shop_recs.ranking import experiments, recommend, served
from shop_recs.storefront import tracking


def _may_read_customer(request: Request, customer: Customer | None) -> bool:
    """Staff/tokens with ``view_customer``, or the shopper's own logged-in user."""
    user = request.user
    if not (user and user.is_authenticated):
        return False
    if user.has_perm("shop_recs_catalog.view_customer"):
        return True
    return customer is not None and customer.user_id == user.pk


SESSION_REFUSED = (
    "Not readable by this caller: a session's history is read by the browser holding that "
    "session (its session cookie; then leave session_id out), with a signed session id "
    "(shop_recs.storefront.tracking.signed_session_id), or with a token that has "
    "view_interaction."
)


def _readable_session(request: Request, requested: str) -> str | None:
    """The session whose recorded events this request may use as history: the browser's own
    (its Django session), one named by a signed id, or any one for a caller allowed to read
    interactions. None when ``requested`` is a bare id of someone else's session: knowing a
    session id must not reveal what that shopper did."""
    own = tracking.session_shopper_id(request)
    if not requested:
        return own
    if requested == own:
        return own
    signed = tracking.unsign_session_id(requested)
    if signed is not None:
        return signed
    user = request.user
    if user and user.is_authenticated and user.has_perm("shop_recs_catalog.view_interaction"):
        return requested
    return None


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
    tag: experiments.ListTag,
) -> Response:
    served.record("recommendations", [r.item.id for r in result.results])
    tag.served([r.item.id for r in result.results])
    return Response(
        {
            "customer_id": customer_id,
            "session_id": session_id,
            "model_version": result.model_version,
            "history": [h.external_id for h in result.history],
            "ignored_item_ids": ignored,
            "results": s.recommendations_data(result.results, request),
            **tag.fields(),
        }
    )


@extend_schema(parameters=[_external_id_param()])
class CustomerRecommendationsView(PluginAPIView):
    """Recommendations for a known shopper: their recent events through the active model,
    else content similarity to them, else popular items; each result says why."""

    schema_public = False  # view_customer, or the customer's own login
    serving = True

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
        values = q.query_values(
            request,
            s.RecommendationQuerySerializer,
            {**q.FILTERS, "include_purchased": q.boolean},
            {**q.FILTER_DEFAULTS, "include_purchased": False},
        )
        with experiments.serving_for(
            surface="recommendations", customer_external_id=customer.external_id
        ) as tag:
            result = recommend.recommendations(
                customer=customer,
                k=values["k"],
                filters=_similarity_filters(values),
                include_purchased=values["include_purchased"],
            )
        return _recommendations_response(
            request, result, customer_id=external_id, session_id=None, ignored=[], tag=tag
        )


class RecommendationsView(PluginAPIView):
    """Recommendations for anonymous and new shoppers: a session id and/or the items viewed
    recently, optionally a known customer (that needs view_customer, or being that customer)."""

    permission_classes = [QueryPermission]
    schema_public = True
    serving = True

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
                    "own login); anonymous shoppers send recent_item_ids (and their session)."
                )
        requested = values.get("session_id") or ""
        session_id = _readable_session(request, requested)
        if session_id is None:
            raise ValidationError({"session_id": [SESSION_REFUSED]})
        recent = list(values.get("recent_item_ids") or [])
        _, ignored = recommend.shopper_history(recent_item_ids=recent)
        filters = {**values.get("filters", {}), "exclude": values.get("exclude") or ()}
        with experiments.serving_for(
            surface="recommendations",
            customer_external_id=customer.external_id if customer else None,
            session_id=session_id,
        ) as tag:
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
            session_id=requested or None,
            ignored=ignored,
            tag=tag,
        )
