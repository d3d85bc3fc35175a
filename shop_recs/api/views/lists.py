"""Lists built from vectors: similar items (any space) and semantic search."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from shop_recs.api import query as q
from shop_recs.api import serializers as s
from shop_recs.api.base import PluginAPIView, extend_schema
from shop_recs.api.views.common import ERROR, READ_ERRORS, _clean_path_id, _external_id_param
from shop_recs.ranking import experiments, served
from shop_recs.ranking.similar import items_search, similar_items
from shop_recs.search.query import EncoderUnavailable, search_query_vectors
from shop_recs.search.types import NotEncoded, SimilarFilters
from shop_recs.storefront import tracking

SIMILAR_FIELDS = {**q.FILTERS, "space": q.choice("text", "image", "content", "hybrid")}
SEARCH_FIELDS = {**q.FILTERS, "q": q.char(1000)}


def _similarity_filters(values: dict[str, Any]) -> SimilarFilters:
    return SimilarFilters(
        category=values.get("category"),
        brand=values.get("brand"),
        in_stock=values.get("in_stock", True),
        price_min=values.get("price_min"),
        price_max=values.get("price_max"),
        exclude=tuple(values.get("exclude") or ()),
    )


@extend_schema(parameters=[_external_id_param()])
class ItemSimilarView(PluginAPIView):
    """Items similar to this one in a space (text, image, content, or the model's hybrid)."""

    serving = True

    @extend_schema(
        operation_id="items_similar",
        parameters=[s.SimilarQuerySerializer],
        responses={
            200: s.SimilarOutputSerializer,
            400: ERROR,
            409: OpenApiResponse(
                OpenApiTypes.OBJECT, description="The item is not encoded in this space yet."
            ),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request, external_id: str) -> Response:
        external_id = _clean_path_id(external_id)
        values = q.query_values(
            request, s.SimilarQuerySerializer, SIMILAR_FIELDS, q.FILTER_DEFAULTS
        )
        shopper = tracking.experiment_shopper(request, surface="similar")
        try:
            with experiments.serving_for(surface="similar", **shopper) as tag:
                space, results = similar_items(
                    external_id=external_id,
                    space=values.get("space"),
                    k=values["k"],
                    filters=_similarity_filters(values),
                )
        except NotEncoded as exc:
            return Response(
                {"detail": str(exc), "encoding": {"status": exc.status, "error": exc.error}},
                status=status.HTTP_409_CONFLICT,
            )
        if results is None:
            raise NotFound(f"No item with external_id {external_id!r}.")
        served.record("similar", [n.item.id for n in results])
        tag.served([n.item.id for n in results])
        out = {
            "item_id": external_id,
            "space": space,
            "results": s.neighbours_data(results, request),
            **tag.fields(),
        }
        return Response(out)


class SearchView(PluginAPIView):
    """Semantic search: the query text is encoded and matched in the text space (and the image
    space when the configured encoder is joint, like CLIP)."""

    serving = True

    @extend_schema(
        operation_id="search",
        parameters=[s.SearchQuerySerializer],
        responses={200: s.SearchOutputSerializer, 400: ERROR, 503: ERROR, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        values = q.query_values(
            request, s.SearchQuerySerializer, SEARCH_FIELDS, q.FILTER_DEFAULTS, required=("q",)
        )
        try:
            query_vectors = search_query_vectors(values["q"])
        except EncoderUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        shopper = tracking.experiment_shopper(request, surface="search")
        with experiments.serving_for(surface="search", **shopper) as tag:
            results = items_search(
                query_vectors=query_vectors, k=values["k"], filters=_similarity_filters(values)
            )
        served.record("search", [n.item.id for n in results])
        tag.served([n.item.id for n in results])
        out = {
            "q": values["q"],
            "spaces": sorted(query_vectors),
            "results": s.neighbours_data(results, request),
            **tag.fields(),
        }
        return Response(out)
